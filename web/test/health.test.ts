// The words under the gradient-health view: each layer's status at the current step, and why.
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import { healthSummary } from "../src/views/health";

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
});
