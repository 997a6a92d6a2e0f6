// The scalar chart's axis labels stay short at any scale.
import { describe, expect, it } from "vitest";
import { axisLabel, axisTitle, scalarOptions } from "../src/views/scalars";

describe("axis labels", () => {
  it("read plainly in the usual range and in powers of ten beyond it", () => {
    expect([0, 0.5, 1, 2.25, 0.001, 100, 1234].map(axisLabel)).toEqual(["0", "0.5", "1", "2.25", "0.001", "100", "1230"]);
    expect([30000, 15000, 1e6, -20000, 0.0002, 0.00025, 1e-6].map(axisLabel)).toEqual(["3e4", "1.5e4", "1e6", "-2e4", "2e-4", "2.5e-4", "1e-6"]);
  });
});

describe("chart options", () => {
  it("call the x series and axis step, and title each value axis with the scalars drawn against it", () => {
    const names = ["accuracy", "loss", "lr", "test_accuracy"];
    const o = scalarOptions(names, 600);
    expect(o.series[0].label).toBe("step"); // (the hover legend reads "step: 300")
    expect(o.axes![0].label).toBe("step");
    expect(o.series.slice(1).map((s) => [s.label, s.scale])).toEqual([["accuracy", "r"], ["loss", "y"], ["lr", "r"], ["test_accuracy", "r"]]);
    expect([o.axes![1].scale, o.axes![1].label, o.axes![1].show]).toEqual(["y", "loss", true]);
    expect([o.axes![2].scale, o.axes![2].side, o.axes![2].label, o.axes![2].show]).toEqual(["r", 1, "accuracy, lr, test_accuracy", true]);
  });

  it("put the step axis' ticks on whole steps only", () => {
    const incrs = scalarOptions(["loss"], 600).axes![0].incrs as number[];
    expect(incrs.slice(0, 6)).toEqual([1, 2, 5, 10, 20, 50]);
    expect(incrs.every((v) => Number.isInteger(v))).toBe(true);
    expect(incrs[incrs.length - 1]).toBeGreaterThanOrEqual(1e9);
  });

  it("hide an axis nothing is drawn against", () => {
    const o = scalarOptions(["loss"], 600);
    expect([o.axes![1].show, o.axes![2].show]).toEqual([true, false]);
    const r = scalarOptions(["lr"], 600);
    expect([r.axes![1].show, r.axes![2].show, r.axes![2].label]).toEqual([false, true, "lr"]);
  });

  it("cut a long title short", () => {
    expect(axisTitle(["loss", "val_loss"])).toBe("loss, val_loss");
    const long = axisTitle(["loss", "val_loss", "reconstruction_loss", "kl"]);
    expect(long.length).toBe(30);
    expect(long.endsWith("…")).toBe(true);
  });
});
