// What the explorer's pictures mean: the structure's colour legend and buttons, the box its camera
// frames (the input slab included), label placement, colour-bar ranges and the comparison chart's key.
import { describe, expect, it } from "vitest";
import type { Comparison, Graph } from "../src/views/explorer/client";
import {
  barKind, barTip, CATEGORY_COLORS, collapseTarget, colorScale, cssColor, divergenceLegend, formatValue, layoutUnits, legendEntries,
  placeLabels, shortLabel, structureButtons,
} from "../src/views/explorer/keys";
import { visibleUnits, type Unit } from "../src/views/explorer/logic";

function layer(id: string, category: string, parent: string | null, shape: number[] | null) {
  return { id, kind: category, category, output_shape: shape, params: 1, parent } as unknown as Graph["layers"][number];
}

// LeNet-5 as the server describes it: flat, no nested modules
const lenet = {
  layers: [
    layer("input", "io", null, [1, 28, 28]),
    layer("conv1", "conv", null, [6, 28, 28]),
    layer("act1", "activation", null, [6, 28, 28]),
    layer("pool1", "pool", null, [6, 14, 14]),
    layer("flatten", "reshape", null, [400]),
    layer("drop", "regularization", null, [400]),
    layer("fc1", "dense", null, [120]),
    layer("odd", "somethingnew", null, [120]),
    layer("fc3", "dense", null, [10]),
  ],
  containers: [],
  edges: [],
} as unknown as Graph;

const nested = {
  layers: [
    layer("input", "io", null, [3, 8, 8]),
    layer("layer1.0.conv", "conv", "layer1.0", [4, 8, 8]),
    layer("layer1.1.conv", "conv", "layer1.1", [4, 8, 8]),
    layer("fc", "dense", null, [10]),
  ],
  containers: [
    { id: "layer1", type: "Sequential", parent: null, children: [] },
    { id: "layer1.0", type: "Block", parent: "layer1", children: [] },
    { id: "layer1.1", type: "Block", parent: "layer1", children: [] },
  ],
  edges: [],
} as unknown as Graph;

describe("the structure's colour legend", () => {
  it("lists each kind of block drawn once, in a network's order, in the blocks' colours", () => {
    const entries = legendEntries(visibleUnits(lenet, new Set()));
    expect(entries.map((e) => e.category)).toEqual(["io", "conv", "activation", "pool", "regularization", "reshape", "dense", "other"]);
    expect(entries.find((e) => e.category === "dense")).toMatchObject({ label: "dense (linear)", color: cssColor(CATEGORY_COLORS.dense), count: 2 });
    expect(entries.find((e) => e.category === "other")!.count).toBe(1); // an unknown category is drawn (and keyed) as other
    expect(cssColor(0x0000ff)).toBe("#0000ff");
  });
  it("keys a collapsed module, and not the layers hidden inside it", () => {
    const entries = legendEntries(visibleUnits(nested, new Set(["layer1"])));
    expect(entries.map((e) => e.category)).toEqual(["io", "dense", "container"]);
    expect(legendEntries([])).toEqual([]);
  });
});

describe("the structure's camera", () => {
  it("frames a box holding every block, the input slab whole (top to bottom) included", () => {
    const units = visibleUnits(lenet, new Set());
    const { placed, bounds } = layoutUnits(units);
    expect(placed.map((p) => p.unit.id)).toEqual(units.map((u) => u.id));
    const input = placed[0];
    expect(input.unit.id).toBe("input");
    expect(bounds.min[0]).toBeLessThanOrEqual(input.x);
    for (const p of placed) {
      expect(bounds.min[0]).toBeLessThanOrEqual(p.x);
      expect(bounds.max[0]).toBeGreaterThanOrEqual(p.x + p.size[0]);
      for (const k of [1, 2]) {
        expect(bounds.min[k]).toBeLessThanOrEqual(-p.size[k] / 2);
        expect(bounds.max[k]).toBeGreaterThanOrEqual(p.size[k] / 2);
      }
    }
    // the input (28 x 28) is the tallest block here: the box is as tall as it, no taller
    expect(bounds.max[2] - bounds.min[2]).toBeCloseTo(input.size[2]);
    // blocks follow one another along x without overlapping
    for (let i = 1; i < placed.length; i++) expect(placed[i].x).toBeGreaterThan(placed[i - 1].x + placed[i - 1].size[0]);
  });
  it("grows the box around an opened layer's wall of maps", () => {
    const units = visibleUnits(lenet, new Set());
    const closed = layoutUnits(units).bounds;
    const open = layoutUnits(units, "conv1", { count: 64, width: 28, height: 28 });
    const wall = open.placed.find((p) => p.unit.id === "conv1")!;
    expect(wall.wall).toMatchObject({ cols: 8, count: 64 });
    expect(open.bounds.max[2]).toBeGreaterThan(closed.max[2]);
    expect(open.bounds.min[2]).toBeLessThan(closed.min[2]);
    // it stands in front of every block (their -y faces, towards the camera), which so cannot cover it
    for (const p of open.placed) if (!p.wall) expect(wall.wall!.y).toBeLessThanOrEqual(-p.size[1] / 2);
    // (one map only: a block as before)
    expect(layoutUnits(units, "conv1", { count: 1, width: 28, height: 28 }).placed[1].wall).toBeNull();
  });
});

describe("the structure's buttons", () => {
  it("have nothing to expand or collapse on a flat model, and say why", () => {
    const b = structureButtons(lenet, new Set());
    expect(b.expandAll.disabled && b.collapse.disabled).toBe(true);
    expect(b.expandAll.title).toMatch(/no nested modules/);
  });
  it("expand all while anything is collapsed; collapse until it is collapsed", () => {
    const target = collapseTarget(nested);
    expect([...target]).toEqual(["layer1"]); // (few layers: the top-level modules)
    const open = structureButtons(nested, new Set());
    expect(open.expandAll).toMatchObject({ disabled: true, title: expect.stringMatching(/expanded already/) });
    expect(open.collapse.disabled).toBe(false);
    const closed = structureButtons(nested, target);
    expect(closed.expandAll.disabled).toBe(false);
    expect(closed.collapse.disabled).toBe(true);
    expect(structureButtons(nested, new Set(["layer1.0"])).collapse.disabled).toBe(false);
  });
});

describe("block labels", () => {
  const spot = (id: string, x: number, priority = 0) => ({ id, x, top: 50, bottom: 100, width: 40, height: 14, priority });
  it("go above their block, else below, else hide; the important ones first", () => {
    const at = placeLabels([spot("a", 100), spot("b", 120), spot("c", 130, 5)], { width: 400, height: 300 });
    expect(at.get("c")).toEqual({ x: 110, y: 50 - 3 - 14 }); // placed first: above
    expect(at.get("a")).toEqual({ x: 80, y: 103 }); // above is taken: below
    expect(at.has("b")).toBe(false); // both taken
  });
  it("stay inside the view", () => {
    const at = placeLabels([{ id: "top", x: 100, top: 5, bottom: 40, width: 40, height: 14, priority: 0 }, spot("edge", 5)], { width: 400, height: 300 });
    expect(at.get("top")!.y).toBe(43);
    expect(at.has("edge")).toBe(false);
  });
  it("are short", () => {
    expect(shortLabel("conv1")).toBe("conv1");
    expect(shortLabel("layer1.0.downsample.0")).toBe("…ownsample.0");
    expect(shortLabel("layer1.0.downsample.0")).toHaveLength(12);
  });
});

describe("colour bars", () => {
  const maps = { count: 3, vmin: [-1, 0, -2], vmax: [1, 3, 0.5], units: null };
  it("span every map's range, and say each map has its own", () => {
    expect(colorScale(maps, "grey")).toMatchObject({ lo: -2, hi: 3, mid: null, perMap: true, map: null });
    expect(colorScale(maps, "grey")!.note).toMatch(/own/);
  });
  it("give a hovered map's own range", () => {
    expect(colorScale(maps, "grey", 1)).toMatchObject({ lo: 0, hi: 3, perMap: false, map: 1 });
    expect(colorScale(maps, "grey", 7)).toMatchObject({ lo: -2, hi: 3, map: null }); // (no such map)
  });
  it("a dense layer's units share one scale", () => {
    const s = colorScale({ count: 1, vmin: [-0.5], vmax: [2], units: 120 }, "grey")!;
    expect(s).toMatchObject({ lo: -0.5, hi: 2, perMap: false });
    expect(s.note).toMatch(/units/);
  });
  it("differences are centred on 0, ± the largest", () => {
    const diff = { count: 2, vmin: [-0.25, -4], vmax: [0.25, 4], units: null };
    expect(colorScale(diff, "diverging")).toMatchObject({ lo: -4, hi: 4, mid: 0, perMap: true });
    expect(colorScale(diff, "diverging", 0)).toMatchObject({ lo: -0.25, hi: 0.25, mid: 0, map: 0 });
    expect(colorScale({ count: 1, vmin: [-0], vmax: [0], units: 3 }, "diverging")).toMatchObject({ lo: -0, hi: 0, mid: 0 });
  });
  it("no maps, no bar; values read short", () => {
    expect(colorScale({ count: 0, vmin: [], vmax: [], units: null }, "grey")).toBeNull();
    expect(formatValue(4.4661)).toBe("4.47");
    expect(formatValue(-4.2912)).toBe("−4.29");
    expect(formatValue(6.12, true)).toBe("+6.12");
    expect(formatValue(0, true)).toBe("0");
    expect(formatValue(0.00012)).toBe("1.2e-4");
    expect(formatValue(123456)).toBe("1.2e5");
  });
});

describe("the comparison chart's key", () => {
  const layers = (rels: (number | null)[]) => rels.map((relative, i) => ({ layer: `l${i}`, relative, l2: 1, cosine: 0.5, top_filters: [] }));
  it("colours the parting layer, the others at or above the threshold, and those below", () => {
    const c = { threshold: 0.5, diverges_at: "l2", layers: layers([0.1, 0.7, 0.6, null]) } as unknown as Comparison;
    expect(c.layers.map((l) => barKind(l, c))).toEqual(["below", "above", "parting", "above"]); // (null: a change from zero, infinite)
    const legend = divergenceLegend(c);
    expect(legend.map((e) => e.key)).toEqual(["below", "above", "parting", "threshold"]);
    expect(legend.find((e) => e.key === "parting")!.text).toMatch(/part ways \(l2\)/);
    expect(legend.find((e) => e.key === "threshold")).toMatchObject({ swatch: "dash" });
    expect(legend.find((e) => e.key === "threshold")!.text).toMatch(/threshold 0\.5: a change half the size of A's output/);
    expect(barTip(c.layers[3], c)).toMatch(/^l3: relative change ∞/);
    expect(barTip(c.layers[2], c)).toMatch(/part ways here/);
  });
  it("keys only the colours drawn, and says when the inputs never part ways", () => {
    const c = { threshold: 0.5, diverges_at: null, layers: layers([0.1, 0.2]) } as unknown as Comparison;
    expect(divergenceLegend(c).map((e) => e.key)).toEqual(["below", "parting", "threshold"]);
    expect(divergenceLegend(c)[1].text).toMatch(/none here/);
  });
});
