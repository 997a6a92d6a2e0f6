// The correlation heatmap's geometry and words: which cell is under the pointer, the order
// that keeps groups together, and the groups listed beneath.
import { describe, expect, it } from "vitest";
import { contrast, diverging, groupColor, hexRgb, outlineStrokes } from "../src/colors";
import { cellAt, describeCell, groupLines, groupOrder, heatLayout } from "../src/views/heatmap";

// four filters: 1 and 3 alike (group 5), 0 alone, 2 dead
const labels = [-1, 5, -1, 5];
const matrix = Float32Array.from([
  1, 0.1, 0, -0.4,
  0.1, 1, 0, 0.93,
  0, 0, 1, 0,
  -0.4, 0.93, 0, 1,
]);
const dead = Uint8Array.from([0, 0, 1, 0]);

describe("correlation heatmap", () => {
  it("puts grouped filters first, each group together, then the rest in their order", () => {
    expect(groupOrder(labels)).toEqual([1, 3, 0, 2]);
    expect(groupOrder([2, -1, 0, 2, 0])).toEqual([2, 4, 0, 3, 1]);
  });

  it("keeps the matrix square and the colour scale beside it, however wide the panel", () => {
    for (const width of [200, 480, 1200]) {
      const l = heatLayout(16, width);
      expect(l.cell * 16).toBeCloseTo(l.size);
      expect(l.barX).toBeGreaterThan(l.x0 + l.size);
      expect(l.barX + 12).toBeLessThanOrEqual(Math.max(width, l.x0 + 40 + 50));
      expect(l.size).toBeLessThanOrEqual(420);
    }
    expect(heatLayout(8, 480).labelEvery).toBe(1);
    expect(heatLayout(512, 480).labelEvery).toBeGreaterThan(1); // numbers no closer than ~12 px
    // along the top, numbers of two or three digits side by side: room for each one's width
    const l32 = heatLayout(32, 480);
    expect(l32.labelEvery).toBe(1);
    expect(l32.columnEvery * l32.cell).toBeGreaterThanOrEqual(2 * 6.5 + 4);
    expect(heatLayout(8, 480).columnEvery).toBe(1);
  });

  it("finds the filters of the cell under the pointer in display order, nothing outside", () => {
    const l = heatLayout(4, 400);
    const order = groupOrder(labels);
    const at = (i: number, j: number) => cellAt(l, order, l.x0 + (j + 0.5) * l.cell, l.y0 + (i + 0.5) * l.cell);
    expect(at(0, 1)).toEqual([1, 3]);
    expect(at(2, 3)).toEqual([0, 2]);
    expect(cellAt(l, order, l.x0 - 2, l.y0 + 5)).toBeNull();
    expect(cellAt(l, order, l.x0 + l.size + 1, l.y0 + 5)).toBeNull();
    expect(cellAt(l, order, l.barX + 3, l.y0 + 5)).toBeNull();
  });

  it("says a cell's correlation, whether both are in one group, and that a dead filter has none", () => {
    expect(describeCell(1, 3, matrix, 4, labels, dead)).toBe("filters 1 and 3: r = 0.930, both in group 5");
    expect(describeCell(0, 3, matrix, 4, labels, dead)).toBe("filters 0 and 3: r = -0.400");
    expect(describeCell(2, 0, matrix, 4, labels, dead)).toBe("filter 2 is dead (a constant map): no correlation");
    expect(describeCell(3, 3, matrix, 4, labels, null)).toBe("filter 3, in group 5");
  });

  it("lists each group with its filters and the mean correlation of its pairs", () => {
    const lines = groupLines(labels, matrix);
    expect(lines.map(({ id, filters }) => [id, filters])).toEqual([[5, [1, 3]]]);
    expect(lines[0].meanR).toBeCloseTo(0.93);
    const three = groupLines([0, 0, 0, -1], Float32Array.from([1, 0.9, 0.8, 0, 0.9, 1, 0.7, 0, 0.8, 0.7, 1, 0, 0, 0, 0, 1]));
    expect(three[0].meanR).toBeCloseTo(0.8);
    expect(groupLines([-1, -1], Float32Array.from([1, 0, 0, 1]))).toEqual([]);
  });
});

describe("group outlines", () => {
  // every group's outline against every cell colour of the heatmap (r from -1 to 1)
  const cells = Array.from({ length: 41 }, (_, i) => diverging(-1 + i / 20));
  const groups = Array.from({ length: 18 }, (_, g) => groupColor(g));

  it("stand out from every cell, group 0's red on the red of high correlation too", () => {
    for (const colour of groups) {
      const strokes = outlineStrokes(colour);
      // widest first, the group's own colour (the legend's) last, along the middle
      expect(strokes.map((s) => s.width)).toEqual([...strokes.map((s) => s.width)].sort((a, b) => b - a));
      expect(strokes[strokes.length - 1].color).toBe(colour);
      // the outermost stroke differs clearly from every cell
      for (const cell of cells) expect(contrast(hexRgb(strokes[0].color), cell), `${colour} on ${cell}`).toBeGreaterThanOrEqual(3);
      // and the colour can be told on the stroke beneath it
      expect(contrast(hexRgb(colour), hexRgb(strokes[strokes.length - 2].color)), colour).toBeGreaterThanOrEqual(3);
    }
    // the red of group 0 alone would vanish on the reddest cells
    expect(contrast(hexRgb(groupColor(0)), diverging(1))).toBeLessThan(1.5);
  });
});
