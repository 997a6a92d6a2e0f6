// The dashboard's weight grid wraps a single input channel's filters exactly as Python's
// convscope.export._scenes.window_origins does for the VTK files (asked at test time).
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import { blockAt, describeBlock, gridSize, windowOrigin } from "../src/views/weightGrid";

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

  it("names the block under the pointer by filter, channel, row and column, with its weight", () => {
    // blocks are laid channel by channel, filter by filter, then row by row in a window
    expect(blockAt(0, [4, 2, 3, 3])).toEqual({ f: 0, c: 0, y: 0, x: 0 });
    expect(blockAt(9 + 4, [4, 2, 3, 3])).toEqual({ f: 1, c: 0, y: 1, x: 1 });
    expect(blockAt(36 + 9 * 3 + 8, [4, 2, 3, 3])).toEqual({ f: 3, c: 1, y: 2, x: 2 });
    expect(blockAt(64 + 6, [100, 3, 1, 1])).toEqual({ f: 6, c: 1, y: 0, x: 0 }); // 64 of the 100 filters drawn a channel
    const data = Float32Array.from({ length: 4 * 2 * 3 * 3 }, (_, i) => i / 100);
    const frame = { payload: { weights: { dtype: "<f4", shape: [4, 2, 3, 3], data }, vmax: 1 } } as unknown as Frame;
    // block 13 is filter 1, channel 0, row 1, column 1: flat index ((1*2+0)*3+1)*3+1 = 22
    expect(describeBlock(frame, 13)).toBe("filter 1, channel 0, row 1, column 1: w = 0.220");
    const dense = { payload: { weights: { dtype: "<f4", shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }, vmax: 6 } } as unknown as Frame;
    expect(describeBlock(dense, 4)).toBe("filter 1, channel 1: w = 4.00");
  });
});
