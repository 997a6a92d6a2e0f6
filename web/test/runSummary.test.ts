// The Runs page's summary columns: last values, gradient health and pruned filters, in words.
import { describe, expect, it } from "vitest";
import { STATUS_COLORS } from "../src/colors";
import { filterChanges, formatValue, healthCell, lastValues, scalarOrder } from "../src/views/runSummary";

describe("a run's summary on the Runs page", () => {
  it("says values in 4 significant digits, without trailing zeros, and the non-finite ones in words", () => {
    expect(formatValue(0.8123456)).toBe("0.8123");
    expect(formatValue(0.9)).toBe("0.9");
    expect(formatValue(0.97)).toBe("0.97"); // (an accuracy stays a fraction: nothing says it is percent)
    expect(formatValue(1)).toBe("1");
    expect(formatValue(0)).toBe("0");
    expect(formatValue(2.302585)).toBe("2.303");
    expect(formatValue(1234.5678)).toBe("1235");
    expect(formatValue(123456)).toBe("123500");
    expect(formatValue(-0.012345)).toBe("-0.01235");
    expect(formatValue(1.5e-7)).toBe("1.5e-7");
    expect(formatValue(3e21)).toBe("3e+21");
    expect(formatValue("nan")).toBe("NaN");
    expect(formatValue("inf")).toBe("∞");
    expect(formatValue("-inf")).toBe("−∞");
    expect(formatValue(0.8123456, 6)).toBe("0.812346");
  });

  it("puts loss first, then accuracies, then the rest, each alphabetically", () => {
    expect(scalarOrder(["lr", "val_acc", "loss", "accuracy", "epoch", "val_loss", "Acc@5"])).toEqual([
      "loss", "Acc@5", "accuracy", "val_acc", "epoch", "lr", "val_loss",
    ]);
    expect(scalarOrder([])).toEqual([]);
  });

  it("shows three values and names every one, with its step, in the tooltip", () => {
    const v = lastValues({
      lr: { value: 0.05, step: 1200 },
      accuracy: { value: 0.912345, step: 1200 },
      loss: { value: 0.31234567, step: 1250 },
      "lr/group1": { value: 0.005, step: 1200 },
      grad_scale: { value: "inf", step: 3 },
    });
    expect(v.shown).toEqual([
      { name: "loss", value: "0.3123" },
      { name: "accuracy", value: "0.9123" },
      { name: "grad_scale", value: "∞" },
    ]);
    expect(v.more).toBe(2);
    expect(v.title).toBe(
      "loss = 0.312346 (at step 1,250)\naccuracy = 0.912345 (at step 1,200)\ngrad_scale = ∞ (at step 3)\n" +
        "lr = 0.05 (at step 1,200)\nlr/group1 = 0.005 (at step 1,200)",
    );
    expect(lastValues({})).toEqual({ shown: [], more: 0, title: "" });
  });

  it("marks each flagged layer in its status's colour with how many checks flagged it", () => {
    const h = healthCell({
      conv1: { status: "stalled", step: 600, flagged: 12, checks: 60 },
      conv2: { status: "healthy", step: 600, flagged: 0, checks: 60 },
      fc1: { status: "healthy", step: 600, flagged: 3, checks: 60 }, // (flagged before, healthy at its last check)
      fc2: { status: "nonfinite", step: 600, flagged: 1, checks: 1 },
    });
    expect(h.flagged).toEqual([
      { layer: "conv1", status: "stalled", color: STATUS_COLORS.stalled, text: "conv1 stalled (12 of 60 checks)" },
      { layer: "fc1", status: "healthy", color: STATUS_COLORS.healthy, text: "fc1 healthy now (flagged 3 of 60 checks)" },
      { layer: "fc2", status: "nonfinite", color: STATUS_COLORS.nonfinite, text: "fc2 nonfinite (1 of 1 check)" },
    ]);
    expect(h.quiet).toBe("");
    expect(h.title.split("\n")).toEqual([
      "conv1: stalled at step 600 (its last check); 12 of 60 checks flagged it",
      "conv2: healthy at step 600 (its last check); all 60 checks healthy",
      "fc1: healthy at step 600 (its last check); 3 of 60 checks flagged it",
      "fc2: nonfinite at step 600 (its last check); 1 of 1 check flagged it",
    ]);
  });

  it("says healthy quietly where no check ever flagged a layer, and nothing where there were no checks", () => {
    const h = healthCell({ conv1: { status: "healthy", step: 30, flagged: 0, checks: 3 } });
    expect(h.flagged).toEqual([]);
    expect(h.quiet).toBe("healthy");
    expect(healthCell({})).toEqual({ flagged: [], quiet: "", title: "" });
    // a status the page has no colour for still gets a marker
    expect(healthCell({ conv1: { status: "odd", step: 1, flagged: 1, checks: 1 } }).flagged[0].color).toBe(STATUS_COLORS.stalled);
  });

  it("says each pruned layer's filters before its first pruning and after its last", () => {
    expect(filterChanges({
      conv1: { before: 16, after: 12, prunings: 1, first_step: 300, step: 300 },
      conv2: { before: 32, after: 20, prunings: 3, first_step: 300, step: 1500 },
    })).toEqual([
      { layer: "conv1", text: "conv1 16 → 12", title: "conv1: 16 filters before pruning, 12 after; pruned once at step 300" },
      { layer: "conv2", text: "conv2 32 → 20", title: "conv2: 32 filters before pruning, 20 after; pruned 3 times (steps 300 to 1,500)" },
    ]);
    expect(filterChanges({})).toEqual([]);
  });
});
