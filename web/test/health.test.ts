// The words under the gradient-health view: each layer's status at the current step, and why.
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import { healthStepAt, healthSummary, stepTicks } from "../src/views/health";

const frame = (step: number, layer: string, payload: Record<string, unknown>): Frame =>
  ({ run: "r", step, layer, kind: "gradient_health", wall_time: 0, payload }) as unknown as Frame;

describe("health summary", () => {
  const frames = [
    frame(10, "conv1", { status: "healthy", reasons: [] }),
    frame(20, "conv1", { status: "exploding", reasons: ["gradient norm 312 > 100", "update ratio 0.4 per step > 0.1"] }),
    frame(10, "conv2", { status: "healthy", reasons: ["stalled for 1 of 3 checks"], raw_status: "stalled" }),
    frame(20, "conv2", { status: "stalled" }), // written before reasons were stored
  ];

  it("reads each layer's newest frame at or before the current step, with the rules that fired", () => {
    expect(healthSummary(frames, ["conv1", "conv2"], 15).map((s) => s.text)).toEqual([
      "conv1 healthy",
      "conv2 healthy (stalled for 1 of 3 checks)",
    ]);
    expect(healthSummary(frames, ["conv1", "conv2"], 25)).toEqual([
      { layer: "conv1", status: "exploding", text: "conv1 exploding: gradient norm 312 > 100; update ratio 0.4 per step > 0.1" },
      { layer: "conv2", status: "stalled", text: "conv2 stalled" },
    ]);
  });

  it("leaves out layers with nothing recorded yet, in the order of the layers given", () => {
    expect(healthSummary(frames, ["fc", "conv2"], 5)).toEqual([]);
    expect(healthSummary(frames, ["conv2", "conv1"], 10).map((s) => s.layer)).toEqual(["conv2", "conv1"]);
  });

  it("gives the check's numbers after its words", () => {
    const f = frame(30, "conv1", { status: "exploding", reasons: ["gradient norm 312 > 100"], grad_norm: 312.4, update_ratio: 0.0031, dead_fraction: 0.25 });
    expect(healthSummary([f], ["conv1"], 30)[0].text).toBe(
      "conv1 exploding: gradient norm 312 > 100 · update 3.1e-3 of |w| a step · 25% of maps dead"); // (the norm said once)
    const calm = frame(30, "conv2", { status: "healthy", reasons: [], grad_norm: 0.42, update_ratio: 0.05, dead_fraction: 0 });
    expect(healthSummary([calm], ["conv2"], 30)[0].text).toBe("conv2 healthy · gradient norm 0.42 · update 0.05 of |w| a step");
  });

  it("turns a click on the strip into the step under it, within the steps shown", () => {
    // the strip runs from x = 110 (after the layer names) to w - 8
    expect(healthStepAt(110, 918, 10, 810)).toBe(10);
    expect(healthStepAt(910, 918, 10, 810)).toBe(810);
    expect(healthStepAt(510, 918, 10, 810)).toBe(410);
    expect(healthStepAt(20, 918, 10, 810)).toBe(10);
    expect(healthStepAt(5000, 918, 10, 810)).toBe(810);
  });
});

describe("health step axis", () => {
  it("marks the first and last steps and round ones between, not crowding the ends", () => {
    expect(stepTicks(10, 600, 800)).toEqual([10, 100, 200, 300, 400, 500, 600]);
    expect(stepTicks(10, 600, 300)).toEqual([10, 200, 400, 600]);
    expect(stepTicks(10, 590, 800)).toEqual([10, 100, 200, 300, 400, 500, 590]);
    expect(stepTicks(0, 3, 800)).toEqual([0, 1, 2, 3]);
    expect(stepTicks(40, 40, 800)).toEqual([40]);
    for (const [first, last, width] of [[10, 600, 800], [7, 12345, 640], [0, 1, 500]]) {
      const t = stepTicks(first, last, width);
      expect([t[0], t.at(-1)]).toEqual([first, last]);
      const px = t.map((s) => ((s - first) / (last - first)) * width);
      for (let i = 1; i < px.length; i++) expect(px[i] - px[i - 1]).toBeGreaterThanOrEqual(40);
    }
  });
});
