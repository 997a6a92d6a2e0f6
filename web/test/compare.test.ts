// Comparing runs: the route, the runs' colours, which charts there are and their lines, the
// runs' gradient health side by side, and their filters' redundancy.
import { describe, expect, it } from "vitest";
import { contrast, hexRgb } from "../src/colors";
import { compareHash, compareTitle, parseCompareHash } from "../src/compareRoute";
import type { Frame } from "../src/frames";
import {
  addHealth, alignLines, chartOrder, compareCharts, compareOptions, filtersLayer, filtersName, FLAGS, flagMarker, flagText,
  gradNormLayer, gradNormLines, gradNormName, healthFlags, healthyText, niceAbove, normSplits, normThreshold, redundancyCharts,
  redundancyLayer, redundancyLines, redundancyName, redundancyText, redundantStyle, RUN_COLORS, runStyle, type RunHealth, unsentChecks,
} from "../src/views/compare";
import { filterCounts, graphFilters, prunedLayers } from "../src/views/pruning";
import { addRedundancy } from "../src/views/redundancy";
import { addScalars } from "../src/views/scalars";

const frame = (step: number, kind: string, payload: Record<string, unknown>, layer = ""): Frame =>
  ({ run: "r", step, layer, kind, wall_time: 0, payload }) as unknown as Frame;
const line = (pairs: [number, number][]) => new Map(pairs);

describe("the compare route", () => {
  it("names the runs in their order, each once, and reads back as it was written", () => {
    expect(compareHash(["lenet", "lenet-pruned"])).toBe("#/compare?runs=lenet,lenet-pruned");
    expect(parseCompareHash("#/compare?runs=lenet,lenet-pruned")).toEqual(["lenet", "lenet-pruned"]);
    const odd = ["a,b", "c d", "é/2", "x%y", "a,b"];
    expect(compareHash(odd)).toBe("#/compare?runs=a%2Cb,c%20d,%C3%A9%2F2,x%25y");
    expect(parseCompareHash(compareHash(odd))).toEqual(["a,b", "c d", "é/2", "x%y"]);
  });

  it("takes an id as typed where it is not valid %-encoding, and leaves out empty parts and doubles", () => {
    expect(parseCompareHash("#/compare?runs=b%zz,,a,b%zz,")).toEqual(["b%zz", "a"]);
    expect(parseCompareHash("#/compare?x=1&runs=a,b&y=2")).toEqual(["a", "b"]);
  });

  it("names no runs where there are none, and is not the route of another page", () => {
    expect(parseCompareHash("#/compare")).toEqual([]);
    expect(parseCompareHash("#/compare?runs=")).toEqual([]);
    expect(parseCompareHash("#/compare?")).toEqual([]);
    for (const other of ["#/runs", "#/runs/compare", "#/compared", "#/explore", ""]) expect(parseCompareHash(other)).toBeNull();
  });

  it("titles the page with the runs compared", () => {
    expect(compareTitle(["a", "b"])).toBe("a vs b");
    expect(compareTitle(["a", "b", "c"])).toBe("a vs b vs c");
    expect(compareTitle(["a", "b", "c", "d", "e"])).toBe("a vs b vs c + 2 more");
    expect(compareTitle([])).toBe("no runs");
  });
});

describe("the runs' colours", () => {
  it("gives each run its own colour, each readable on the dark panels", () => {
    const colours = RUN_COLORS.map((_, i) => runStyle(i));
    expect(new Set(colours.map((c) => c.stroke)).size).toBe(RUN_COLORS.length);
    expect(colours.every((c) => c.dash === null)).toBe(true);
    for (const c of colours) expect(contrast(hexRgb(c.stroke), hexRgb("#181b21"))).toBeGreaterThan(3);
  });

  it("tells apart the runs past the colours by dashes", () => {
    const n = RUN_COLORS.length;
    const styles = Array.from({ length: 3 * n }, (_, i) => runStyle(i));
    expect(styles[n].stroke).toBe(styles[0].stroke);
    expect(styles[n].dash).not.toBeNull();
    expect(new Set(styles.map((s) => `${s.stroke} ${s.dash}`)).size).toBe(styles.length);
  });

  it("draws the first runs wider: where two lines are the same, the one under shows at the edges", () => {
    expect([0, 1, 2, 3].map((i) => runStyle(i).width)).toEqual([3.5, 2, 1.25, 1.25]);
  });
});

describe("the charts", () => {
  it("come losses first, then what else was logged, learning rates, and filter counts", () => {
    expect(chartOrder(["lr", "conv1/filters", "accuracy", "val_loss", "loss", "lr/group1", "grad", "accuracy"]))
      .toEqual(["loss", "val_loss", "accuracy", "grad", "lr", "lr/group1", "conv1/filters"]);
    expect(filtersName("features.0")).toBe("features.0/filters");
    expect(filtersLayer("features.0/filters")).toBe("features.0");
    expect([filtersLayer("loss"), filtersLayer("/filters")]).toEqual([null, null]);
  });

  it("are one per name some run has, each with only the runs that have it, in the page's order", () => {
    const a = { run: "a", lines: new Map([["loss", line([[1, 2]])], ["accuracy", line([[1, 0.5]])]]) };
    const b = { run: "b", lines: new Map([["loss", line([[1, 3]])], ["empty", new Map<number, number>()]]) };
    const charts = compareCharts([a, { run: "gone", lines: new Map() }, b]);
    expect(charts.map((c) => [c.name, c.runs.map((r) => [r.run, r.index])])).toEqual([
      ["loss", [["a", 0], ["b", 2]]],
      ["accuracy", [["a", 0]]],
    ]);
    expect(compareCharts([])).toEqual([]);
  });

  it("align the runs' lines on every step either has, leaving gaps where one has none", () => {
    const [steps, a, b] = alignLines([line([[0, 1], [10, 0.5], [20, 0.25]]), line([[5, 9], [10, 8]])]);
    expect(Array.from(steps)).toEqual([0, 5, 10, 20]);
    expect(a).toEqual([1, null, 0.5, 0.25]);
    expect(b).toEqual([null, 9, 8, null]);
  });

  it("hold a step line's value between its own steps, for the legend to read (not before its first nor past its last)", () => {
    const [steps, a, b] = alignLines([line([[0, 16], [20, 8], [50, 8]]), line([[10, 32], [30, 32]])], 100, true);
    expect(Array.from(steps)).toEqual([0, 10, 20, 30, 50]);
    expect(a).toEqual([16, 16, 8, 8, 8]);
    expect(b).toEqual([null, 32, 32, 32, null]);
  });

  it("draw a long line from at most so many of its points, its last always", () => {
    const long = line(Array.from({ length: 1001 }, (_, i) => [i, i * 2] as [number, number]));
    const [steps, values] = alignLines([long, line([[3, 1]])], 100);
    expect(steps.length).toBeLessThan(120);
    expect(steps).toContain(1000);
    expect(steps).toContain(3); // (the other line's own step)
    expect(values[steps.indexOf(1000)]).toBe(2000);
  });

  it("read the values logged, from scalar and scalars frames alike", () => {
    const series = addScalars(new Map(), [
      frame(3, "scalar", { name: "loss", value: 2.5 }),
      frame(5, "scalars", { name: "loss", steps: { data: new BigInt64Array([4n, 5n]) }, values: { data: new Float64Array([2, 1.5]) } }),
      frame(5, "pruning", { before: 16, after: 8 }, "conv1"),
    ]);
    expect([...series.keys()]).toEqual(["loss"]);
    expect([...series.get("loss")!]).toEqual([[3, 2.5], [4, 2], [5, 1.5]]);
  });

  it("give each run's line its colour and label, a filter count stepped from 0, and one cursor for them all", () => {
    const lines = [0, 1].map((i) => ({ run: `r${i}`, label: `r${i} (named x)`, style: runStyle(i), line: line([[0, 1]]), marks: [] }));
    const loss = compareOptions("loss", lines, 600);
    expect(loss.series.slice(1).map((s) => [s.label, s.stroke])).toEqual([["r0 (named x)", RUN_COLORS[0]], ["r1 (named x)", RUN_COLORS[1]]]);
    expect(loss.series[0].label).toBe("step");
    expect(loss.series[1].paths).toBeUndefined();
    expect(loss.cursor?.sync?.key).toBe("convscope-compare");
    const counts = compareOptions("conv1/filters", lines, 600);
    expect(counts.series[1].paths).toBeTypeOf("function");
    const range = counts.scales!.y.range as (u: unknown, min: number, max: number) => [number, number];
    expect(range(null, 8, 16)).toEqual([0, 18]);
  });
});

describe("filter counts", () => {
  const prunings = [
    frame(40, "pruning", { before: 8, after: 4, removed: [0, 1, 2, 3] }, "conv1"),
    frame(20, "pruning", { before: 16, after: 8, removed: [0, 2, 4, 6, 8, 10, 12, 14], coupled: { bn1: [0, 2, 4, 6, 8, 10, 12, 14] } }, "conv1"),
    frame(20, "pruning", { before: 16, after: 8, removed: [] }, "conv1"), // (the same frame again: fetched, then streamed)
    frame(30, "scalars", { name: "loss" }),
  ];

  it("follow a pruned layer from its size down each pruning to the run's last step", () => {
    expect([...filterCounts(prunings, "conv1", 16, 0, 50)!]).toEqual([[0, 16], [20, 8], [40, 4], [50, 4]]);
    // (without the graph's size: the first pruning's "before")
    expect([...filterCounts(prunings, "conv1", undefined, 0, 50)!]).toEqual([[0, 16], [20, 8], [40, 4], [50, 4]]);
  });

  it("drop a layer that lost the same filters by as many", () => {
    expect([...filterCounts(prunings, "bn1", 16, 0, 50)!]).toEqual([[0, 16], [20, 8], [50, 8]]);
  });

  it("stay at a layer's size where no pruning touched it, and say nothing where nothing gives its size", () => {
    expect([...filterCounts(prunings, "conv2", 32, 0, 50)!]).toEqual([[0, 32], [50, 32]]);
    expect(filterCounts([], "conv2", undefined, 0, 50)).toBeNull();
  });

  it("name the layers the prunings took filters from, and the conv layers' sizes in a model graph", () => {
    expect([...prunedLayers(prunings)].sort()).toEqual(["bn1", "conv1"]);
    const graph = { layers: [{ id: "conv1", attributes: { filters: 16 } }, { id: "relu", attributes: {} }, { id: "fc", attributes: { units: 10 } }] };
    expect([...graphFilters(graph)]).toEqual([["conv1", 16]]);
    expect(graphFilters(null).size).toBe(0);
    expect(graphFilters({ layers: "no" }).size).toBe(0);
  });
});

describe("gradient health side by side", () => {
  const check = (step: number, status: string, grad_norm: number, layer = "conv1", reasons: string[] = []) =>
    frame(step, "gradient_health", { status, grad_norm, update_ratio: 0.01, zero_fraction: 0, dead_fraction: NaN, nonfinite: 0, reasons }, layer);
  const health = (frames: Frame[]): RunHealth => addHealth(new Map(), frames);

  it("charts each checked layer's gradient norm, named as the TensorBoard export names it, after every other chart", () => {
    expect(gradNormName("features.0")).toBe("features.0/grad_norm");
    expect(gradNormLayer("features.0/grad_norm")).toBe("features.0");
    expect([gradNormLayer("loss"), gradNormLayer("/grad_norm"), gradNormLayer("conv1/filters")]).toEqual([null, null, null]);
    expect(chartOrder(["conv2/grad_norm", "conv1/filters", "loss", "conv1/grad_norm", "lr", "accuracy"]))
      .toEqual(["loss", "accuracy", "lr", "conv1/filters", "conv1/grad_norm", "conv2/grad_norm"]);
  });

  it("keep each layer's checks by step (a check fetched, then streamed again, once), passing over other frames", () => {
    const h = health([
      check(10, "healthy", 0.5), check(20, "exploding", 2e3, "conv1", ["gradient norm 2e+03 > 1000"]), check(10, "healthy", 0.25, "conv2"),
      frame(10, "scalar", { name: "loss", value: 2 }), frame(20, "pruning", { before: 16, after: 8 }, "conv1"),
      check(20, "exploding", 2e3, "conv1", ["gradient norm 2e+03 > 1000"]),
      frame(30, "gradient_health", { status: "healthy", grad_norm: 0.1 }, "conv1"), // (written before reasons were stored)
    ]);
    expect([...h.keys()]).toEqual(["conv1", "conv2"]);
    expect([...h.get("conv1")!]).toEqual([
      [10, { norm: 0.5, status: "healthy", reasons: [] }],
      [20, { norm: 2e3, status: "exploding", reasons: ["gradient norm 2e+03 > 1000"] }],
      [30, { norm: 0.1, status: "healthy", reasons: [] }],
    ]);
  });

  it("draw each layer's norms, leaving out one that is not a number, with the other charts' lines", () => {
    const h = health([check(10, "healthy", 0.5), check(20, "stalled", 0), check(30, "nonfinite", NaN), check(10, "healthy", 3, "conv2")]);
    const lines = gradNormLines(h);
    expect([...lines.keys()]).toEqual(["conv1/grad_norm", "conv2/grad_norm"]);
    expect([...lines.get("conv1/grad_norm")!]).toEqual([[10, 0.5], [20, 0]]);
    // a layer only one run checked: its chart has that run alone (the page says which it is not in)
    const charts = compareCharts([{ run: "a", lines }, { run: "b", lines: gradNormLines(health([check(10, "healthy", 1)])) }]);
    expect(charts.map((c) => [c.name, c.runs.map((r) => r.run)])).toEqual([["conv1/grad_norm", ["a", "b"]], ["conv2/grad_norm", ["a"]]]);
  });

  it("flag a layer per status the tracker gave but healthy: from its first step, its stretches, how many checks, the first one's reasons", () => {
    const checks = health([
      check(10, "healthy", 0.4), check(20, "stalled", 0, "conv1", ["units dead"]), check(30, "exploding", 5e13, "conv1", ["gradient norm 5.37e+13 > 1000"]),
      check(40, "stalled", 0, "conv1", ["units dead again"]), check(50, "stalled", 0), check(60, "stalled", 0), check(70, "healthy", 0.1),
      check(80, "stalled", 0),
    ]).get("conv1")!;
    expect(healthFlags(checks)).toEqual([
      { status: "stalled", from: 20, spans: [[20, 20], [40, 60], [80, 80]], checks: 5, of: 8, reasons: ["units dead"] },
      { status: "exploding", from: 30, spans: [[30, 30]], checks: 1, of: 8, reasons: ["gradient norm 5.37e+13 > 1000"] },
    ]);
    expect(healthFlags(health([check(10, "healthy", 0.4), check(20, "healthy", 0.3)]).get("conv1")!)).toEqual([]);
    // (in step order, however the checks came)
    expect(healthFlags(health([check(30, "vanishing", 1e-9), check(20, "vanishing", 1e-9), check(10, "healthy", 1)]).get("conv1")!))
      .toEqual([{ status: "vanishing", from: 20, spans: [[20, 30]], checks: 2, of: 3, reasons: [] }]);
    // a thinned series: the share is of all the layer's checks, not of those the page was sent
    const sent = health([check(10, "healthy", 1), check(500, "exploding", 1e4), check(990, "healthy", 1)]).get("conv1")!;
    expect(healthFlags(sent, 100).map((f) => [f.checks, f.of])).toEqual([[1, 100]]);
    expect(healthFlags(sent, 2).map((f) => [f.checks, f.of])).toEqual([[1, 3]]); // (never fewer than it has: a live run's count grows)
  });

  it("count the checks of a thinned series that the page was not sent", () => {
    const sent = [frame(10, "gradient_health", {}, "conv1"), frame(990, "gradient_health", {}, "conv1"), frame(10, "gradient_health", {}, "conv2"),
      frame(10, "scalars", {})];
    const counts = { "gradient_health:conv1": 100, "gradient_health:conv2": 1, "scalars:": 7 };
    expect([...unsentChecks(counts, sent)]).toEqual([["conv1", 98]]);
    // (a read that has more than the count it was given: checks stored after the details were read)
    expect([...unsentChecks({ "gradient_health:conv1": 1 }, sent)]).toEqual([]);
    expect([...unsentChecks(undefined, sent)]).toEqual([]); // (an older server says no counts)
  });

  it("say each flag in words: which, from which step, where, and why", () => {
    const flag = { status: "stalled", from: 30, spans: [[30, 150]] as [number, number][], checks: 13, of: 15, reasons: ["100.0% of gradients exactly zero (>= 99%): units dead"] };
    expect(flagText(flag)).toBe("stalled from step 30 · steps 30–150 (13 of 15 checks): 100.0% of gradients exactly zero (>= 99%): units dead");
    expect(flagText({ ...flag, status: "exploding", from: 10, spans: [[10, 10]], checks: 1, reasons: ["a", "b"] }))
      .toBe("exploding from step 10 (1 of 15 checks): a; b");
    const spans: [number, number][] = [[10, 10], [30, 40], [60, 60], [80, 90], [110, 110]];
    expect(flagText({ ...flag, from: 10, spans, checks: 7, reasons: [] }, 3)).toBe("stalled from step 10 · steps 10, 30–40, 60 and 2 more stretches (7 of 15 checks)");
    expect(flagText({ ...flag, from: 10, spans: spans.slice(0, 4), checks: 6, reasons: [] }, 3)).toBe("stalled from step 10 · steps 10, 30–40, 60 and 1 more stretch (6 of 15 checks)");
    expect([healthyText(15), healthyText(1)]).toEqual(["healthy at all 15 checks", "healthy at its one check"]);
  });

  it("mark each flag with a shape of its own, in its status's colour", () => {
    expect(FLAGS).toEqual(["exploding", "vanishing", "stalled", "nonfinite"]);
    const marks = FLAGS.map(flagMarker);
    expect(new Set(marks.map((m) => m.match(/points="([^"]+)"/)![1])).size).toBe(FLAGS.length);
    expect(marks[0]).toContain('fill="#e6194b"');
    expect(flagMarker("no such status")).toContain("<polygon"); // (a status this page does not know still shows)
  });

  it("draw norms on a logarithmic axis from the decade of the least above 0, with 0 under them", () => {
    expect(normThreshold([line([[0, 0], [10, 0.13]]), line([[0, 2e3]])])).toBe(0.1);
    expect(normThreshold([line([[0, 3.2e-5]])])).toBe(1e-5); // (exactly: 10 ** -5 is not)
    expect(normThreshold([line([[0, 0]]), new Map()])).toBe(1);
    expect([niceAbove(0.558), niceAbove(1.12), niceAbove(3), niceAbove(5e4), niceAbove(1e-8), niceAbove(0.3)]).toEqual([1, 2, 5, 5e4, 1e-8, 0.5]);
    expect(normSplits(0, 1, 0.1)).toEqual([0, 0.1, 0.2, 0.5, 1]);
    expect(normSplits(0.1, 2, 0.1)).toEqual([0.1, 0.2, 0.5, 1, 2]);
    expect(normSplits(1e-8, 5e4, 1e-8)).toEqual([1e-8, 1e-5, 0.01, 10, 1e4]);
    expect(normSplits(0, 1e3, 1e-3)).toEqual([0, 1e-3, 0.1, 10, 1e3]); // (seven decades: every second)
    const lines = [0, 1].map((i) => ({ run: `r${i}`, label: `r${i}`, style: runStyle(i), line: line([[10, 0], [20, 0.13 * (i + 1)], [30, 1.12]]), marks: [] }));
    const o = compareOptions("conv1/grad_norm", lines, 600);
    expect([o.scales!.y.distr, o.scales!.y.asinh]).toEqual([4, 0.1]);
    const range = o.scales!.y.range as (u: unknown, min: number | null, max: number | null) => [number, number];
    expect([range(null, 0, 1.12), range(null, 0.13, 1.12), range(null, 0, 0)]).toEqual([[0, 2], [0.1, 2], [0, 1]]);
    const splits = o.axes![1].splits as (u: unknown, i: number, min: number, max: number) => number[];
    expect(splits(null, 1, 0, 2)).toEqual([0, 0.1, 0.2, 0.5, 1, 2]);
    const value = o.series[1].value as (u: unknown, v: number | null) => string;
    expect([value(null, 5.37e13), value(null, 0.1234), value(null, null)]).toEqual(["5.4e13", "0.123", "--"]);
    expect(o.cursor?.sync?.key).toBe("convscope-compare");
    const loss = compareOptions("loss", lines, 600);
    expect([loss.scales!.y.distr, loss.axes![1].splits, loss.series[1].value]).toEqual([undefined, undefined, undefined]);
  });
});

describe("filter redundancy side by side", () => {
  const groups = (step: number, labels: number[], layer = "conv1") =>
    frame(step, "groups", { labels: { dtype: "<i4", shape: [labels.length], data: Int32Array.from(labels) }, threshold: 0.9, method: "pairs", events: [], next_id: 9 }, layer);

  it("draw a layer's filters and redundant filters as two lines, one chart per layer any run grouped, in the charts' order", () => {
    const a = addRedundancy(new Map(), [groups(0, [0, 0, 1, 1]), groups(10, [0, 0, -1]), groups(0, [-1, -1], "fc")]);
    const b = addRedundancy(new Map(), [groups(0, [0, 0, 0, 0])]);
    const { filters, redundant } = redundancyLines(a.get("conv1")!);
    expect([[...filters], [...redundant]]).toEqual([[[0, 4], [10, 3]], [[0, 2], [10, 1]]]);
    const charts = redundancyCharts([{ run: "a", redundancy: a }, { run: "gone", redundancy: new Map() }, { run: "b", redundancy: b }]);
    expect(charts.map((c) => [c.name, c.layer, c.runs.map((r) => [r.run, r.index])])).toEqual([
      ["conv1/redundancy", "conv1", [["a", 0], ["b", 2]]],
      ["fc/redundancy", "fc", [["a", 0]]],
    ]);
    expect(redundancyCharts([])).toEqual([]);
    expect([redundancyName("features.0"), redundancyLayer("features.0/redundancy")]).toEqual(["features.0/redundancy", "features.0"]);
    expect([redundancyLayer("loss"), redundancyLayer("/redundancy"), redundancyLayer("conv1/filters")]).toEqual([null, null, null]);
  });

  it("draw a run's redundant filters in its colour, dashed (dotted where its line is dashed already), counted from 0 as filters are", () => {
    const solid = runStyle(0), past = runStyle(RUN_COLORS.length);
    expect(redundantStyle(solid)).toEqual({ ...solid, dash: [7, 4] });
    expect(redundantStyle(past).stroke).toBe(past.stroke);
    expect(redundantStyle(past).dash).not.toEqual(past.dash);
    expect(redundantStyle(past).dash).not.toEqual(redundantStyle(solid).dash);
    const lines = [{ run: "a", label: "a filters", style: solid, line: line([[0, 16], [10, 12]]), marks: [] },
      { run: "a", label: "a redundant", style: redundantStyle(solid), line: line([[0, 4], [10, 0]]), marks: [] }];
    const o = compareOptions("conv1/redundancy", lines, 600);
    expect(o.series.slice(1).map((s) => [s.label, s.stroke, s.dash])).toEqual([["a filters", solid.stroke, undefined], ["a redundant", solid.stroke, [7, 4]]]);
    expect(o.series[1].paths).toBeTypeOf("function"); // (stepped: a count holds until the next recording)
    const range = o.scales!.y.range as (u: unknown, min: number, max: number) => [number, number];
    expect(range(null, 0, 16)).toEqual([0, 18]);
    const dash = o.legend!.markers!.dash as (u: unknown, i: number) => string;
    expect([dash(null, 1), dash(null, 2)]).toEqual(["solid", "dotted"]);
  });

  it("say a run's counts in words, at its first and last recording", () => {
    const counts = (pairs: [number, number, number][]) => new Map(pairs.map(([s, f, r]) => [s, { filters: f, redundant: r, groups: 1 }]));
    expect(redundancyText(counts([[1500, 12, 0], [0, 16, 4], [700, 14, 2]]))).toBe("16 → 12 filters, 4 → 0 redundant (steps 0–1500)");
    expect(redundancyText(counts([[10, 16, 4], [50, 16, 3]]))).toBe("16 filters, 4 → 3 redundant (steps 10–50)");
    expect(redundancyText(counts([[10, 32, 0]]))).toBe("32 filters, 0 redundant (step 10)");
    expect(redundancyText(new Map())).toBe("no filter groups recorded");
  });
});
