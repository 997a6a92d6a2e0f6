// A layer's filters and redundant filters over the steps: the counts of its groups frames, and the
// dashboard's timeline of them (its words at the current step, its range, where a click goes).
import { describe, expect, it } from "vitest";
import type { Frame } from "../src/frames";
import {
  addRedundancy, countsAt, FILTERS_COLOR, type GroupCounts, groupCounts, nearestStep, REDUNDANT_COLOR, REDUNDANT_DASH, redundancyNow,
  redundancyRows, timelineData, timelineOptions, timelineRange,
} from "../src/views/redundancy";

const frame = (step: number, kind: string, payload: Record<string, unknown>, layer = "conv1"): Frame =>
  ({ run: "r", step, layer, kind, wall_time: 0, payload }) as unknown as Frame;
const groups = (step: number, labels: number[], layer = "conv1") =>
  frame(step, "groups", { labels: { dtype: "<i4", shape: [labels.length], data: Int32Array.from(labels) }, threshold: 0.9, method: "pairs" }, layer);
const counts = (rows: [number, number, number, number][]): Map<number, GroupCounts> =>
  new Map(rows.map(([s, filters, redundant, g]) => [s, { filters, redundant, groups: g }]));

describe("a layer's filter counts", () => {
  it("count its filters, those in a group beside another (all but one of each group), and its groups", () => {
    // groups 0 (filters 1, 4, 5), 3 (filters 2, 7) and 8 (filter 6 alone): 6 grouped in 3 groups
    expect(groupCounts([-1, 0, 3, -1, 0, 0, 8, 3])).toEqual({ filters: 8, redundant: 3, groups: 3 });
    expect(groupCounts(Int32Array.from([-1, -1, -1]))).toEqual({ filters: 3, redundant: 0, groups: 0 });
    expect(groupCounts([2, 2, 2, 2])).toEqual({ filters: 4, redundant: 3, groups: 1 });
    expect(groupCounts([])).toEqual({ filters: 0, redundant: 0, groups: 0 });
  });

  it("are kept by layer and step (a frame fetched, then streamed again, once), passing over other frames", () => {
    const r = addRedundancy(new Map(), [
      groups(20, [0, 0, 1, 1, -1, 2, 2, 2]), groups(10, [0, 0, 0, 0, -1, -1, -1, -1]), groups(10, [0, 0, -1, -1], "conv2"),
      frame(20, "correlation", { labels: [0, 0] }), frame(20, "pruning", { before: 8, after: 6 }),
      groups(20, [0, 0, 1, 1, -1, 2, 2, 2]),
      frame(30, "groups", { labels: [0, 0, -1, 1, 1, 1] }), // (labels as a plain list)
      frame(40, "groups", { threshold: 0.9 }), // (no labels: nothing to count)
    ]);
    expect([...r.keys()]).toEqual(["conv1", "conv2"]);
    expect([...r.get("conv1")!].sort((a, b) => a[0] - b[0])).toEqual([
      [10, { filters: 8, redundant: 3, groups: 1 }], [20, { filters: 8, redundant: 4, groups: 3 }], [30, { filters: 6, redundant: 3, groups: 2 }],
    ]);
    expect([...r.get("conv2")!]).toEqual([[10, { filters: 4, redundant: 1, groups: 1 }]]);
    // as the dashboard shows them to tests: [step, filters, redundant] by step
    expect(redundancyRows(r)).toEqual({ conv1: [[10, 8, 3], [20, 8, 4], [30, 6, 3]], conv2: [[10, 4, 1]] });
    expect(redundancyRows(new Map())).toEqual({});
  });
});

describe("the dashboard's redundancy timeline", () => {
  const layer = counts([[300, 16, 4, 3], [0, 16, 0, 0], [100, 16, 1, 1], [500, 8, 0, 2], [200, 1, 0, 1]]);

  it("reads the newest recording at or before the current step, as the heatmap shows it", () => {
    expect(countsAt(layer, 300)).toEqual([300, { filters: 16, redundant: 4, groups: 3 }]);
    expect(countsAt(layer, 499)?.[0]).toBe(300);
    expect(countsAt(layer, 10_000)?.[0]).toBe(500);
    expect(countsAt(counts([[10, 4, 0, 0]]), 9)).toBeNull();
    expect(countsAt(undefined, 9)).toBeNull();
  });

  it("says the counts at the current step in words, with the step of the recording read", () => {
    expect(redundancyNow(layer, 300)).toBe("step 300: 16 filters, 4 redundant (in 3 groups)");
    expect(redundancyNow(layer, 350)).toBe("step 300: 16 filters, 4 redundant (in 3 groups)");
    expect(redundancyNow(layer, 100)).toBe("step 100: 16 filters, 1 redundant (in 1 group)");
    expect(redundancyNow(layer, 0)).toBe("step 0: 16 filters, 0 redundant (no group)");
    expect(redundancyNow(layer, 250)).toBe("step 200: 1 filter, 0 redundant (in 1 group)");
    expect(redundancyNow(layer, 900)).toBe("step 500: 8 filters, 0 redundant (in 2 groups)");
    expect(redundancyNow(counts([[10, 4, 0, 0]]), 5)).toBe("no filter groups recorded by step 5");
    expect(redundancyNow(new Map(), 5)).toBe("no filter groups recorded for this layer");
    expect(redundancyNow(undefined, 5)).toBe("no filter groups recorded for this layer");
  });

  it("goes, on a click, to the recorded step nearest it (the earlier on a tie), within the recordings", () => {
    const steps = [0, 10, 20, 40];
    expect([-5, 0, 4, 5, 6, 14.9, 29, 30, 31, 40, 1e6].map((v) => nearestStep(steps, v))).toEqual([0, 0, 0, 0, 10, 10, 20, 20, 40, 40, 40]);
    expect(nearestStep([7], 100)).toBe(7);
  });

  it("spans the steps from the first recording to the run's last step, so that the current step is on it", () => {
    expect(timelineRange([10, 20, 30], 35)).toEqual([10, 35]);
    expect(timelineRange([10, 20, 30], 30)).toEqual([10, 30]);
    expect(timelineRange([10, 20, 30], 0)).toEqual([10, 30]); // (a last step not yet known)
    expect(timelineRange([10], 10)).toEqual([9, 11]);
  });

  it("draws the recordings in step order, at most so many of them, the last always", () => {
    expect(timelineData(layer)).toEqual([[0, 100, 200, 300, 500], [16, 16, 1, 16, 8], [0, 1, 0, 4, 0]]);
    const many = counts(Array.from({ length: 100 }, (_, i) => [i * 10, 16, i % 5, 1] as [number, number, number, number]));
    const [steps] = timelineData(many, 30);
    expect(steps.length).toBeLessThanOrEqual(34);
    expect(steps[steps.length - 1]).toBe(990);
  });

  it("draws the filters solid and the redundant ones dashed, as step lines from 0, in whole numbers, without drag-to-zoom", () => {
    const o = timelineOptions(400, () => [0, 500]);
    expect(o.series.map((s) => [s.label, s.stroke, s.dash])).toEqual([["step", undefined, undefined],
      ["filters", FILTERS_COLOR, undefined], ["redundant", REDUNDANT_COLOR, REDUNDANT_DASH]]);
    expect(FILTERS_COLOR).not.toBe(REDUNDANT_COLOR);
    expect(o.series[1].paths).toBeTypeOf("function"); // (stepped: a count holds until the next recording)
    const y = o.scales!.y.range as (u: unknown, min: number, max: number) => [number, number];
    expect([y(null, 4, 16), y(null, 0, 0)]).toEqual([[0, 18], [0, 1]]);
    const x = o.scales!.x.range as (u: unknown, min: number, max: number) => [number, number];
    expect(x(null, 0, 300)).toEqual([0, 500]); // (the range given, not the data's)
    expect((o.axes![1].incrs as number[]).every(Number.isInteger)).toBe(true);
    expect(o.cursor!.drag).toEqual({ x: false, y: false });
    const dash = o.legend!.markers!.dash as (u: unknown, i: number) => string;
    expect([dash(null, 1), dash(null, 2)]).toEqual(["solid", "dotted"]);
  });
});
