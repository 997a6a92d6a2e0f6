// Comparing runs: the route, the runs' colours, which charts there are and their lines.
import { describe, expect, it } from "vitest";
import { contrast, hexRgb } from "../src/colors";
import { compareHash, compareTitle, parseCompareHash } from "../src/compareRoute";
import type { Frame } from "../src/frames";
import { alignLines, chartOrder, compareCharts, compareOptions, filtersLayer, filtersName, RUN_COLORS, runStyle } from "../src/views/compare";
import { filterCounts, graphFilters, prunedLayers } from "../src/views/pruning";
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
