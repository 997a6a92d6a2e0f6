// The trajectory view's note: which weights the chosen axes are, and each principal axis's share.
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import { describeAxes, describeRestart, pathAt, weightName } from "../src/views/trajectory";

const arr = (ctor: Float32ArrayConstructor | Float64ArrayConstructor, v: number[]) => ({ dtype: "", shape: [v.length], data: ctor.from(v) });
const frame = {
  run: "r", step: 40, layer: "conv1", kind: "trajectory", wall_time: 0,
  payload: { dim_index: arr(Float64Array, [0, 29, 143]), shape: [16, 1, 3, 3], explained_variance: arr(Float32Array, [0.624, 0.21, NaN]) },
} as unknown as Frame;

describe("trajectory note", () => {
  it("names a flat index by filter, channel, row and column", () => {
    expect(weightName(0, [16, 1, 3, 3])).toBe("w[0,0,0,0]");
    expect(weightName(29, [16, 1, 3, 3])).toBe("w[3,0,0,2]");
    expect(weightName(143, [16, 1, 3, 3])).toBe("w[15,0,2,2]");
    expect(weightName(7, [2, 2, 2])).toBe("w[1,1,1]");
    expect(weightName(5, [])).toBe("w[5]");
  });

  it("names the filter and the input channel by their original numbers after prunings", () => {
    // conv2 of 32 filters reads conv1, pruned from 8 filters to these 4: w[1,2,0,1] is conv1's filter 5
    const inputs = { numbers: [0, 2, 5, 7], original: 8 };
    expect(weightName(55, [32, 4, 3, 3], null, inputs)).toBe("w[1,5,0,1]");
    const names = { numbers: Array.from({ length: 32 }, (_, i) => i + 32), original: 64 };
    expect(weightName(55, [32, 4, 3, 3], names, inputs)).toBe("w[33,5,0,1]");
    expect(weightName(55, [32, 4, 3, 3], names)).toBe("w[33,2,0,1]");
  });

  it("says which weight each axis is, or each principal axis's share of the variance", () => {
    expect(describeAxes(frame, "dims", 12)).toBe("12 points on three chosen weights: x w[0,0,0,0], y w[3,0,0,2], z w[15,0,2,2]");
    expect(describeAxes(frame, "pca", 12)).toBe("12 points, first three principal components (x PC 1 62%, y PC 2 21%, z PC 3 - of the path's variance)");
    expect(describeAxes(undefined, "pca", 0)).toBe("no trajectory frames yet");
  });
});

// the demo's conv1: recorded every 10 steps, pruned 16 -> 12 filters at step 300 (its first
// frame of the new shape at step 310, where a new path starts)
const traj = (step: number, shape: number[]) => ({ run: "r", step, layer: "conv1", kind: "trajectory", wall_time: 0, payload: { shape } }) as unknown as Frame;
const demo = [
  ...Array.from({ length: 30 }, (_, i) => traj(10 + 10 * i, [16, 1, 3, 3])),
  ...Array.from({ length: 30 }, (_, i) => traj(310 + 10 * i, [12, 1, 3, 3])),
];
const steps = (fs: Frame[]) => fs.map((f) => f.step);

describe("trajectory path at a step", () => {
  it("before a pruning: the path as it stood then, of the old shape", () => {
    const at = pathAt(demo, 100);
    expect(steps(at.shown)).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(at.restart).toBeNull();
    expect(at.next).toBe(310);
    expect(describeRestart(at)).toBe("; the weights change shape at step 310, where a new path starts");
    expect(steps(pathAt(demo, 305).shown)).toEqual(steps(demo.slice(0, 30))); // (the last frame of the old shape)
    expect(steps(pathAt(demo, 105).shown).at(-1)).toBe(100);
  });

  it("after it: the new path alone, with where it restarted", () => {
    const at = pathAt(demo, 600);
    expect(steps(at.shown)).toEqual(steps(demo.slice(30)));
    expect(at.restart).toEqual({ from: "16x1x3x3", to: "12x1x3x3", step: 310 });
    expect(at.next).toBeNull();
    expect(describeRestart(at)).toBe("; new path from step 310 (weights 16x1x3x3 → 12x1x3x3), its start ringed");
    expect(steps(pathAt(demo, 325).shown)).toEqual([310, 320]);
    expect(steps(pathAt(demo, Infinity).shown)).toEqual(steps(demo.slice(30)));
  });

  it("nothing before the first frame; one path when the shape never changes", () => {
    expect(pathAt(demo, 5)).toEqual({ shown: [], restart: null, next: null });
    expect(pathAt([], 100).shown).toEqual([]);
    const one = pathAt(demo.slice(0, 30), 1000);
    expect([one.shown.length, one.restart, one.next, describeRestart(one)]).toEqual([30, null, null, ""]);
    // pruned twice: the middle path between the two changes
    const twice = [...demo, traj(610, [9, 1, 3, 3])];
    expect(steps(pathAt(twice, 400).shown)).toEqual(steps(demo.slice(30)).filter((s) => s <= 400));
    expect(pathAt(twice, 400).next).toBe(610);
    expect(pathAt(twice, 700).restart).toEqual({ from: "12x1x3x3", to: "9x1x3x3", step: 610 });
  });
});
