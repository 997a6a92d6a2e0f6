// Filters by their original numbers across prunings: which filter of a pruned layer's frame is
// which of the layer as it started.
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import { filterName, filterNumbers, inputNumberingNote, inputNumbers, numberingNote, originalRemoved } from "../src/views/filterNumbers";
import { describeFilter } from "../src/views/distribution";
import { describeCell, heatLayout } from "../src/views/heatmap";
import { imageScale, mapLabelSize } from "../src/views/images";
import { pruningLines } from "../src/views/pruning";
import { weightName } from "../src/views/trajectory";
import { describeBlock } from "../src/views/weightGrid";

const pruning = (step: number, layer: string, payload: Record<string, unknown>): Frame =>
  ({ run: "r", step, layer, kind: "pruning", wall_time: 0, payload }) as unknown as Frame;
const keep = (before: number, removed: number[]) => Array.from({ length: before }, (_, i) => i).filter((i) => !removed.includes(i));

// the demo's pruning: conv1 16 -> 12 at step 300
const first = pruning(300, "conv1", { removed: [1, 4, 5, 6], kept: keep(16, [1, 4, 5, 6]), before: 16, after: 12 });
// a second one at step 500, in the numbering the first left: 3 and 9 there are 7 and 13 at first
const second = pruning(500, "conv1", { removed: [3, 9], kept: keep(12, [3, 9]), before: 12, after: 10 });

describe("original filter numbers", () => {
  it("numbers the filters left after one pruning by the filters they were", () => {
    const names = filterNumbers([first], "conv1", 600, 12);
    expect(names).toEqual({ numbers: [0, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15], original: 16 });
    expect(filterName(names, 3)).toBe(7);
    expect(numberingNote(names)).toBe("filters numbered as before pruning: 12 of 16 left");
  });

  it("composes two prunings, oldest first, whatever order their frames come in", () => {
    const names = filterNumbers([second, first], "conv1", 510, 10);
    expect(names).toEqual({ numbers: [0, 2, 3, 8, 9, 10, 11, 12, 14, 15], original: 16 });
    expect(numberingNote(names)).toBe("filters numbered as before pruning: 10 of 16 left");
    // between the two, the first alone
    expect(filterNumbers([second, first], "conv1", 400, 12)?.numbers).toEqual([0, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it("uses the numbering of a frame's own time: none before the first pruning, nor at its step", () => {
    // (a step's views are recorded before that step's pruning)
    expect(filterNumbers([first, second], "conv1", 100, 16)).toBeNull();
    expect(filterNumbers([first, second], "conv1", 300, 16)).toBeNull();
    expect(filterNumbers([first, second], "conv1", 301, 12)?.numbers[1]).toBe(2);
    expect(filterNumbers([first, second], "conv1", 500, 12)?.numbers).toHaveLength(12);
    expect(filterName(null, 5)).toBe(5);
    expect(numberingNote(null)).toBe("");
  });

  it("renumbers a coupled layer's filters as its pruned partner's", () => {
    // a residual add joins b's output to a's: b lost the same two filters, in its own numbering
    const joined = pruning(200, "a", { removed: [0, 2], kept: [1, 3, 4, 5], before: 6, after: 4, coupled: { b: [0, 2] } });
    expect(filterNumbers([joined], "b", 201, 4)).toEqual({ numbers: [1, 3, 4, 5], original: 6 });
    // then b pruned on its own (a coupled back): b's 1 and 3 there were 3 and 5
    const own = pruning(400, "b", { removed: [1, 3], kept: [0, 2], before: 4, after: 2, coupled: { a: [1, 3] } });
    expect(filterNumbers([joined, own], "b", 401, 2)).toEqual({ numbers: [1, 4], original: 6 });
    expect(filterNumbers([joined, own], "a", 401, 2)).toEqual({ numbers: [1, 4], original: 6 });
  });

  it("leaves a layer never pruned as it is, even a layer reading a pruned one", () => {
    expect(filterNumbers([first, second], "conv2", 600, 32)).toBeNull();
    expect(filterNumbers([], "conv1", 600, 12)).toBeNull();
    // (other kinds of frame, and a frame sent twice, change nothing)
    const scalar = { ...first, kind: "scalars" } as Frame;
    expect(filterNumbers([first, first, scalar], "conv1", 600, 12)?.numbers).toEqual([0, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it("names each pruning's removed filters by their original numbers", () => {
    const removed = originalRemoved([second, first]);
    expect(removed.get(first)).toEqual([1, 4, 5, 6]);
    expect(removed.get(second)).toEqual([7, 13]);
    expect(pruningLines([second, first])).toEqual([
      "step 300: conv1 16 → 12 filters, removed filters 1, 4, 5, 6",
      "step 500: conv1 12 → 10 filters, removed filters 7, 13",
    ]);
  });
});

describe("original input-channel numbers", () => {
  // the demo's pruning as a run that records `inputs` does: conv2 reads conv1, and lost the same
  // four input channels, in its input numbering just before (16 there)
  const withInputs = pruning(300, "conv1", { removed: [1, 4, 5, 6], kept: keep(16, [1, 4, 5, 6]), before: 16, after: 12, inputs: { conv2: [1, 4, 5, 6] } });
  // then conv1 again: conv2's 3 and 9 (of 12) are 7 and 13 at first
  const again = pruning(500, "conv1", { removed: [3, 9], kept: keep(12, [3, 9]), before: 12, after: 10, inputs: { conv2: [9, 3] } });

  it("numbers the input channels left after one pruning by the channels they were", () => {
    const inputs = inputNumbers([withInputs], "conv2", 600, 12);
    expect(inputs).toEqual({ numbers: [0, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15], original: 16 });
    expect(filterName(inputs, 3)).toBe(7);
    expect(inputNumberingNote(inputs)).toBe("input channels numbered as before pruning: 12 of 16 left");
    // (conv2 lost no filters of its own)
    expect(filterNumbers([withInputs], "conv2", 600, 32)).toBeNull();
  });

  it("composes two prunings, oldest first, whatever order their frames come in", () => {
    const inputs = inputNumbers([again, withInputs], "conv2", 510, 10);
    expect(inputs).toEqual({ numbers: [0, 2, 3, 8, 9, 10, 11, 12, 14, 15], original: 16 });
    expect(inputNumberingNote(inputs)).toBe("input channels numbered as before pruning: 10 of 16 left");
    // (each pruning frame once, other kinds ignored)
    const scalar = { ...again, kind: "scalars" } as Frame;
    expect(inputNumbers([again, withInputs, again, withInputs, scalar], "conv2", 510, 10)).toEqual(inputs);
  });

  it("uses the numbering of a frame's own time: none before the first pruning, nor at its step", () => {
    expect(inputNumbers([withInputs, again], "conv2", 100, 16)).toBeNull();
    expect(inputNumbers([withInputs, again], "conv2", 300, 16)).toBeNull();
    expect(inputNumbers([withInputs, again], "conv2", 301, 12)?.numbers).toEqual([0, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(inputNumbers([withInputs, again], "conv2", 500, 12)?.numbers).toHaveLength(12);
    expect(inputNumbers([withInputs, again], "conv2", 501, 10)?.numbers).toEqual([0, 2, 3, 8, 9, 10, 11, 12, 14, 15]);
    expect(inputNumberingNote(null)).toBe("");
  });

  it("keeps the current numbers where the run's prunings record no `inputs` (older runs)", () => {
    expect(inputNumbers([first, second], "conv2", 600, 10)).toBeNull();
    expect(inputNumbers([], "conv2", 600, 12)).toBeNull();
    // nor for a layer the frames name no input channels of, nor the pruned layer's own inputs
    expect(inputNumbers([withInputs, again], "fc", 600, 100)).toBeNull();
    expect(inputNumbers([withInputs, again], "conv1", 600, 1)).toBeNull();
    // an old run's frame beside a new one's: only the new one counts
    expect(inputNumbers([first, again], "conv2", 600, 10)?.numbers).toEqual([0, 1, 2, 4, 5, 6, 7, 8, 10, 11]);
    expect(inputNumbers([first, again], "conv2", 600, 10)?.original).toBe(12);
  });

  it("numbers a layer's filters and its input channels apart, where it is pruned and reads a pruned layer", () => {
    // conv1 pruned at 300 (conv2 reads it); conv2 pruned itself at 400 (conv3 reads it)
    const own = pruning(400, "conv2", { removed: [0, 31], kept: keep(32, [0, 31]), before: 32, after: 30, inputs: { conv3: [0, 31] } });
    const frames = [own, withInputs];
    const filters = filterNumbers(frames, "conv2", 401, 30), inputs = inputNumbers(frames, "conv2", 401, 12);
    expect(filters).toEqual({ numbers: Array.from({ length: 30 }, (_, i) => i + 1), original: 32 });
    expect(inputs).toEqual({ numbers: [0, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15], original: 16 });
    expect(numberingNote(filters)).toBe("filters numbered as before pruning: 30 of 32 left");
    expect(inputNumberingNote(inputs)).toBe("input channels numbered as before pruning: 12 of 16 left");
    // between the two: its input channels renumbered, its filters not yet
    expect(filterNumbers(frames, "conv2", 350, 32)).toBeNull();
    expect(inputNumbers(frames, "conv2", 350, 12)?.original).toBe(16);
    // and conv1's filters are unaffected by conv2's pruning, conv3's inputs by conv1's
    expect(filterNumbers(frames, "conv1", 401, 12)?.numbers).toEqual([0, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(inputNumbers(frames, "conv1", 401, 1)).toBeNull();
    expect(inputNumbers(frames, "conv3", 401, 30)?.numbers[0]).toBe(1);
  });
});

describe("the views name filters by their original numbers", () => {
  // three filters left of five: 0, 3 and 4 at first
  const names = { numbers: [0, 3, 4], original: 5 };

  it("in the correlation heatmap's words and edges", () => {
    const matrix = Float32Array.from([1, 0.2, 0.1, 0.2, 1, 0.95, 0.1, 0.95, 1]);
    const labels = [-1, 2, 2];
    expect(describeCell(1, 2, matrix, 3, labels, null, names)).toBe("filters 3 and 4: r = 0.950, both in group 2");
    expect(describeCell(1, 1, matrix, 3, labels, null, names)).toBe("filter 3, in group 2");
    expect(describeCell(0, 2, matrix, 3, labels, Uint8Array.from([0, 0, 1]), names)).toBe("filter 4 is dead (a constant map): no correlation");
    // numbers of two digits along the top of a matrix of few filters: room for them
    expect(heatLayout(9, 480, 15).columnEvery * heatLayout(9, 480, 15).cell).toBeGreaterThanOrEqual(2 * 6.5 + 4);
  });

  it("under the distributions, the weight grid and the trajectory's chosen weights", () => {
    const arr = (v: number[]) => ({ dtype: "<f4", shape: [v.length], data: Float32Array.from(v) });
    const dist = { payload: { counts: { dtype: "<f4", shape: [3, 1], data: Float32Array.from([1, 1, 1]) }, min: arr([0, 1, 2]), max: arr([1, 2, 3]),
      mean: arr([0.5, 1.5, 2.5]), std: arr([0.1, 0.1, 0.1]) } } as unknown as Frame;
    expect(describeFilter(dist, 2, Int32Array.from([-1, 0, 0]), names)).toBe("filter 4, group 0: values 2 to 3, mean 2.5, std 0.1");
    const grid = { payload: { weights: { dtype: "<f4", shape: [3, 1, 1, 1], data: Float32Array.from([1, 2, 3]) }, vmax: 3 } } as unknown as Frame;
    expect(describeBlock(grid, 1, names)).toBe("filter 3, channel 0: w = 2.00");
    expect(weightName(2 * 9 + 4, [3, 1, 3, 3], names)).toBe("w[4,0,1,1]");
  });

  it("on the feature maps: each map's number, and the zoomed map's own range", () => {
    const maps = { payload: { normalisation: "per_map", vmin: { dtype: "<f4", shape: [3], data: Float32Array.from([0, 1, 2]) },
      vmax: { dtype: "<f4", shape: [3], data: Float32Array.from([1, 2, 3]) } } } as unknown as Frame;
    expect(imageScale(maps, 1, filterName(names, 1))).toEqual({ lo: "1", hi: "2", what: "filter 3's activation" });
    expect(mapLabelSize(96)).toBe(11);
    expect(mapLabelSize(12)).toBe(0); // (cells too small for a number go without)
  });
});
