// The distribution view's pointer: which filter's line is under it, and what is said of it.
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import { describeFilter, fmt, lineHeight, nearestLine, PEAK, plotBox, plotHeight } from "../src/views/distribution";

// three filters, four bins: filter 0 peaks in bin 0, filter 1 in bin 3, filter 2 flat and low
const counts = Float32Array.from([16, 4, 0, 0, 0, 0, 4, 16, 1, 1, 1, 1]);
const arr = (values: number[]) => ({ dtype: "<f4", shape: [values.length], data: Float32Array.from(values) });
const dist = {
  run: "r", step: 10, layer: "conv1", kind: "distribution", wall_time: 0,
  payload: { counts: { dtype: "<f4", shape: [3, 4], data: counts }, min: arr([-0.5, 0, 2]), max: arr([1.25, 3000, 2.5]),
    mean: arr([0.1, 12.5, 2.25]), std: arr([0.00001, 40000, 0.125]) },
} as unknown as Frame;

describe("distribution view", () => {
  it("puts counts on a square-root scale of the layer's peak, the peak below the plot's top edge", () => {
    expect(PEAK).toBeLessThan(1);
    expect(lineHeight(counts, 4, 0, 0, 16)).toBeCloseTo(PEAK);
    expect(lineHeight(counts, 4, 0, 1, 16)).toBeCloseTo(0.5 * PEAK);
    expect(lineHeight(counts, 4, 2, 2, 16)).toBeCloseTo(0.25 * PEAK);
  });

  it("finds the line nearest the pointer, and none far from every line or off the plot", () => {
    expect(nearestLine(counts, 3, 4, 0.125, 0.98)).toBe(0); // bin 0's centre, near the top
    expect(nearestLine(counts, 3, 4, 0.875, 0.97)).toBe(1);
    expect(nearestLine(counts, 3, 4, 0.375, 0.26)).toBe(2); // bin 1: filter 0 at 0.47, 1 at 0, the flat line at 0.235
    expect(nearestLine(counts, 3, 4, 0.25, 0.72)).toBe(0); // halfway between bins 0 and 1: filter 0 falls from 0.94 to 0.47
    expect(nearestLine(counts, 3, 4, 0.375, 0.7)).toBe(-1);
    expect(nearestLine(counts, 3, 4, 1.2, 0.25)).toBe(-1);
  });

  it("fills a box taller than its least height (the row beside the correlation panel), and never takes less", () => {
    expect(plotHeight(586.4, 280)).toBe(586);
    expect(plotHeight(120, 280)).toBe(280);
    expect(plotHeight(0, 280)).toBe(280); // (a box not laid out: its min-height)
    expect(plotHeight(300, NaN)).toBe(300); // (no min-height: "auto" or "0px")
    expect(plotBox(600, 586)).toEqual({ x: 28, y: 6, w: 566, h: 552 }); // the plot takes the canvas's height, less the axis words
    expect(plotBox(600, 280)).toEqual({ x: 28, y: 6, w: 566, h: 246 });
  });

  it("says a filter's group and its values' real range and moments", () => {
    expect(describeFilter(dist, 0, Int32Array.from([2, -1, -1]))).toBe("filter 0, group 2: values -0.5 to 1.25, mean 0.1, std 1.00e-5");
    expect(describeFilter(dist, 1, null)).toBe("filter 1: values 0 to 3000, mean 12.5, std 4.00e+4");
    expect(fmt(1234)).toBe("1230");
    expect(fmt(100)).toBe("100");
  });
});
