// What the ends of the feature maps' colour map stand for, as the colour bars say.
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import { imageScale } from "../src/views/images";

const maps = (normalisation: string, vmin: number[], vmax: number[]) =>
  ({ payload: { normalisation, vmin: { dtype: "<f4", shape: [vmin.length], data: Float32Array.from(vmin) }, vmax: { dtype: "<f4", shape: [vmax.length], data: Float32Array.from(vmax) } } }) as unknown as Frame;

describe("feature-map colour scale", () => {
  it("gives one range for maps normalised together", () => {
    expect(imageScale(maps("shared", [-0.5, -0.5], [2.25, 2.25]))).toEqual({ lo: "-0.5", hi: "2.25", what: "activation, one scale for every map" });
  });

  it("says each map has its own range, and how far those spread, when normalised one by one", () => {
    const f = maps("per_map", [0, -0.25, 0.001], [1.5, 3, 0.75]);
    expect(imageScale(f)).toEqual({ lo: "min", hi: "max", what: "each map from its own min (-0.25 to 1.0e-3) to its own max (0.75 to 3); click a map for its values" });
    // one map's own range, for the zoomed map's bar
    expect(imageScale(f, 1)).toEqual({ lo: "-0.25", hi: "3", what: "filter 1's activation" });
    expect(imageScale(f, 2)).toEqual({ lo: "1.0e-3", hi: "0.75", what: "filter 2's activation" });
    expect(imageScale(maps("per_map", [0.5], [0.5]), 0).what).toBe("filter 0's activation (constant: drawn dark)");
  });
});
