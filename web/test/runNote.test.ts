// The dashboard's note under a run's title, from the run's config and its "dropped" frames.
import { describe, expect, it } from "vitest";
import { countDrops, divergence, dropMarks, runNote } from "../src/views/runNote";

describe("run note", () => {
  it("groups the views by how often they are recorded", () => {
    const note = runNote({ every: { weights: 10, feature_maps: 50, gradients: 10 } }, new Map(), 0);
    expect(note).toBe("records weights, gradients every 10 steps; feature_maps every 50 steps");
    expect(runNote({ every: { weights: 1, feature_maps: 5 } }, new Map(), 0)).toBe("records weights every step; feature_maps every 5 steps");
  });

  it("says how many steps the budget skipped, from the newest running total", () => {
    const drops = new Map<string, number>();
    for (const count of [3, 9, 5]) countDrops(drops, { sink: "budget", count }); // thinned frames can arrive out of order
    countDrops(drops, { sink: "queue", count: 2 });
    const note = runNote({ every: { weights: 10 }, budget: 0.03 }, drops, 4);
    expect(note).toBe(
      "records weights every 10 steps · 9 recording steps skipped to stay within the 3% overhead budget · " +
        "2 frames lost: queue 2 · 4 older feature-map frames thinned to keep the run small",
    );
  });

  it("marks lost frames by cause and deferred steps apart, in the note's words", () => {
    const marks = dropMarks({ queue: 1500, budget: 86, http: 20, store: 0 });
    expect(marks.lost).toEqual({
      total: 1520,
      mark: "⚠ 1,520 lost",
      text: "1,520 frames lost: queue 1,500, http 20",
      title: "1,520 frames lost: queue 1,500, http 20 (queue: the monitor's queue was full; http: the server never got them)",
    });
    expect(marks.deferred).toEqual({
      total: 86,
      mark: "86 deferred",
      text: "86 recording steps skipped to stay within the overhead budget",
      title: "86 recording steps skipped to stay within the overhead budget: deferred on purpose, not lost",
    });
    // the run's header says the same sentences (from the same totals as a Map)
    const note = runNote({}, new Map(Object.entries({ queue: 1500, budget: 86, http: 20 })), 0);
    expect(note).toBe(`${marks.deferred!.text} · ${marks.lost!.text}`);
    expect(dropMarks({ budget: 3 }).lost).toBeUndefined();
    expect(dropMarks({ tensorboard: 1 }).lost!.title).toBe("1 frame lost: tensorboard 1 (tensorboard: the tensorboard sink dropped them)");
    expect(dropMarks({})).toEqual({});
    expect(dropMarks({ queue: 0, budget: 0 })).toEqual({});
  });

  it("says where a stopped training was resumed", () => {
    expect(runNote({}, new Map(), 0, [600])).toBe("training resumed at step 600");
    expect(runNote({ every: { weights: 10 } }, new Map(), 0, [900, 300])).toBe(
      "records weights every 10 steps · training resumed at steps 300, 900",
    );
  });

  it("says where training diverged, from the first non-finite gradient health", () => {
    const health = [
      { step: 10, layer: "conv1", payload: { status: "exploding" } },
      { step: 30, layer: "conv1", payload: { status: "nonfinite" } },
      { step: 20, layer: "conv2", payload: { status: "nonfinite" } },
      { step: 20, layer: "conv1", payload: { status: "healthy" } },
    ];
    const diverged = divergence(health);
    expect(diverged).toEqual({ step: 20, layers: ["conv2"] });
    expect(runNote({}, new Map(), 0, [], diverged)).toBe(
      "training diverged at step 20 (NaN or Inf in conv2): the weight and feature-map views stop before it",
    );
    expect(divergence(health.slice(0, 1))).toBeUndefined();
  });

  it("says nothing it does not know", () => {
    const drops = new Map<string, number>();
    countDrops(drops, { sink: "budget", count: 1 });
    expect(runNote({}, drops, 0)).toBe("1 recording step skipped to stay within the overhead budget");
    expect(runNote({}, new Map(), 0)).toBe("");
  });
});
