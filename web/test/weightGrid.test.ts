// The dashboard's weight grid wraps a single input channel's filters exactly as Python's
// convscope.export._scenes.window_origins does for the VTK files (asked at test time).
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import { fitCamera, projectCorners } from "../src/views/three";
import { blockAt, describeBlock, gridBounds, gridNote, gridSize, layoutText, windowOrigin } from "../src/views/weightGrid";

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

describe("weight grid numbering after pruning", () => {
  // conv2 of the demo after conv1's pruning (16 -> 12): 2 filters of its own left of 3 here,
  // reading 12 of conv1's 16 filters (conv1's 1, 4, 5, 6 gone)
  const names = { numbers: [0, 2], original: 3 };
  const inputs = { numbers: [0, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15], original: 16 };
  const data = Float32Array.from({ length: 2 * 12 }, (_, i) => i);
  const grid = { payload: { weights: { dtype: "<f4", shape: [2, 12, 1, 1], data }, vmax: 24 } } as unknown as Frame;

  it("names a block's input channel by its original number", () => {
    // block 2 * 3 + 1: filter 1, channel 3 (conv1's filter 7), flat index 1 * 12 + 3
    expect(describeBlock(grid, 7, null, inputs)).toBe("filter 1, channel 7: w = 15.0");
    expect(describeBlock(grid, 7, names, inputs)).toBe("filter 2, channel 7: w = 15.0");
    expect(describeBlock(grid, 7, names)).toBe("filter 2, channel 3: w = 15.0");
    expect(describeBlock(grid, 7)).toBe("filter 1, channel 3: w = 15.0");
    const dense = { payload: { weights: { dtype: "<f4", shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }, vmax: 6 } } as unknown as Frame;
    expect(describeBlock(dense, 4, null, { numbers: [1, 3], original: 4 })).toBe("filter 1, channel 3: w = 4.00");
  });

  it("says once in the note how the input channels are numbered", () => {
    const base = "2 filters x 12 channels of 1x1, filters along the columns (x), input channels down the rows (y); point at a block for its weight";
    expect(gridNote([2, 12, 1, 1])).toBe(base);
    expect(gridNote([2, 12, 1, 1], null, inputs)).toBe(`${base}; input channels numbered as before pruning: 12 of 16 left`);
    expect(gridNote([2, 12, 1, 1], names, inputs)).toBe(
      `${base}; filters numbered as before pruning: 2 of 3 left; input channels numbered as before pruning: 12 of 16 left`);
    expect(gridNote([2, 12, 1, 1], names, inputs).match(/input channels numbered/g)).toHaveLength(1);
    expect(gridNote([100, 3])).toBe("100 filters x 3 channels of 1x1 (first 64 x 3 shown), filters along the columns (x), input channels down the rows (y); point at a block for its weight");
  });
});

describe("weight grid framing", () => {
  const dir: [number, number, number] = [0, -0.55, 0.5];
  // the demo's conv1 before and after pruning, a smaller one, a layer with several input
  // channels (conv2), a dense layer, a single filter
  const shapes = [[16, 1, 3, 3], [12, 1, 3, 3], [6, 1, 3, 3], [1, 1, 5, 5], [16, 12, 3, 3], [64, 64, 1, 1], [10, 1, 1, 1]];

  it("bounds every block of the grid", () => {
    // 12 filters of one channel: 3 rows of 4 windows of 3x3, 1 apart
    expect(gridBounds(12, 1, 3, 3)).toEqual({ min: [-0.46, -10.46, -2.5], max: [14.46, 0.46, 2.5] });
    expect(gridBounds(16, 12, 3, 3).max[0]).toBeCloseTo(15 * 4 + 2 + 0.46);
    expect(gridBounds(16, 12, 3, 3).min[1]).toBeCloseTo(-(11 * 4 + 2) - 0.46);
  });

  it("shows the whole grid, centred, whatever the number of filters and the panel's shape", () => {
    for (const [F, C, kh, kw] of shapes) {
      const box = gridBounds(F, C, kh, kw);
      for (const aspect of [2.1, 1.4, 0.8]) {
        const { position, target } = fitCamera(box, dir, 40, aspect);
        const forward = [0, 1, 2].map((k) => target[k] - position[k]) as [number, number, number];
        const ndc = projectCorners(box, position, forward, 40, aspect);
        const xs = ndc.map((p) => p[0]), ys = ndc.map((p) => p[1]);
        const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
        const what = `${F}x${C}x${kh}x${kw} at ${aspect}`;
        // inside the view, with a margin
        for (const v of [x0, x1, y0, y1]) expect(Math.abs(v), what).toBeLessThanOrEqual(0.91);
        // centred
        expect(Math.abs(x0 + x1), what).toBeLessThan(0.01);
        expect(Math.abs(y0 + y1), what).toBeLessThan(0.01);
        // and filling the view one way or the other
        expect(Math.max(x1 - x0, y1 - y0), what).toBeGreaterThan(1.75);
        // from in front and above, as the view opens
        expect(position[1]).toBeLessThan(target[1]);
        expect(position[2]).toBeGreaterThan(target[2]);
      }
    }
  });

  it("says how the windows are laid out", () => {
    expect(layoutText(12, 1)).toBe("one window per filter, 4 to a row from the top left (one input channel)");
    expect(layoutText(16, 12)).toBe("filters along the columns (x), input channels down the rows (y)");
    expect(layoutText(1, 1)).toBe("one window");
  });
});
