// The scalar chart's axis labels stay short at any scale.
import { describe, expect, it } from "vitest";
import { axisLabel } from "../src/views/scalars";

describe("axis labels", () => {
  it("read plainly in the usual range and in powers of ten beyond it", () => {
    expect([0, 0.5, 1, 2.25, 0.001, 100, 1234].map(axisLabel)).toEqual(["0", "0.5", "1", "2.25", "0.001", "100", "1230"]);
    expect([30000, 15000, 1e6, -20000, 0.0002, 0.00025, 1e-6].map(axisLabel)).toEqual(["3e4", "1.5e4", "1e6", "-2e4", "2e-4", "2.5e-4", "1e-6"]);
  });
});
