// The dashboard's weight grid wraps a single input channel's filters exactly as Python's
// convscope.export._scenes.window_origins does for the VTK files (asked at test time).
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { gridSize, windowOrigin } from "../src/views/weightGrid";

const PYTHON = process.env.PYTHON ?? "python3";
const SHAPES = [[1, 1], [2, 1], [5, 1], [6, 1], [16, 1], [17, 1], [64, 1], [16, 3], [8, 16], [1, 4]];

describe("weight grid layout", () => {
  it("puts every window where the VTK export puts it", () => {
    const script = `
import json, sys
from convscope.export._scenes import window_origins
out = []
for f, c in json.loads(sys.argv[1]):
    row, col, rows, cols = window_origins(f, c)
    out.append({"row": row.tolist(), "col": col.tolist(), "rows": rows, "cols": cols})
print(json.dumps(out))`;
    const expected = JSON.parse(execFileSync(PYTHON, ["-c", script, JSON.stringify(SHAPES)]).toString());
    SHAPES.forEach(([F, C], k) => {
      const row: number[][] = [], col: number[][] = [];
      for (let f = 0; f < F; f++) {
        const origins = Array.from({ length: C }, (_, c) => windowOrigin(f, c, F, C));
        row.push(origins.map((o) => o[0]));
        col.push(origins.map((o) => o[1]));
      }
      expect({ row, col }).toEqual({ row: expected[k].row, col: expected[k].col });
      expect(gridSize(F, C)).toEqual([expected[k].rows, expected[k].cols]);
    });
    expect(gridSize(16, 1)).toEqual([4, 4]); // conv1 on grey images: a block, not a 1 x 16 strip
    expect(gridSize(16, 3)).toEqual([3, 16]);
  });
});
