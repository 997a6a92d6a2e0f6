// The prunings under the scalars, in words.
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import { pruningLines } from "../src/views/pruning";

const frame = (step: number, layer: string, payload: Record<string, unknown>): Frame =>
  ({ run: "r", step, layer, kind: "pruning", wall_time: 0, payload }) as unknown as Frame;

describe("pruning lines", () => {
  it("says each pruning's layer, filters, reason, coupled layers and parameters, oldest first", () => {
    const frames = [
      frame(600, "c2", { removed: [3], kept: [0, 1, 2], before: 4, after: 3, reason: "correlation >= 0.9 (pairs groups); c1 lost the same filters (joined to c2's)",
        params_before: 1000, params_after: 800, coupled: { c1: [3] } }),
      frame(300, "conv1", { removed: [1, 4, 5, 6], before: 16, after: 12, reason: "correlation >= 0.8 (pairs groups)", params_before: 12345, params_after: 9000 }),
      { ...frame(10, "x", {}), kind: "scalars" } as Frame,
    ];
    expect(pruningLines(frames)).toEqual([
      "step 300: conv1 16 → 12 filters, removed filters 1, 4, 5, 6 (correlation >= 0.8 (pairs groups)); parameters 12,345 → 9,000",
      "step 600: c2 4 → 3 filters, removed filter 3 (correlation >= 0.9 (pairs groups)); c1 lost the same; parameters 1,000 → 800",
    ]);
    expect(pruningLines([])).toEqual([]);
  });
});
