// The trajectory view's note: which weights the chosen axes are, and each principal axis's share.
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import { describeAxes, weightName } from "../src/views/trajectory";

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

  it("says which weight each axis is, or each principal axis's share of the variance", () => {
    expect(describeAxes(frame, "dims", 12)).toBe("12 points on three chosen weights: x w[0,0,0,0], y w[3,0,0,2], z w[15,0,2,2]");
    expect(describeAxes(frame, "pca", 12)).toBe("12 points, first three principal components (x PC 1 62%, y PC 2 21%, z PC 3 - of the path's variance)");
    expect(describeAxes(undefined, "pca", 0)).toBe("no trajectory frames yet");
  });
});
