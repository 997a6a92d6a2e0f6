// What the explorer's pictures mean, kept apart from the DOM so it is unit-tested
// (web/test/explorer-keys.test.ts): the 3-D structure's colours and legend, where its blocks go and
// the box the camera must show (the input slab included), which structure buttons have anything to
// do, the layer labels that fit, the value range of a colour bar, and the comparison chart's colours
// and legend.
import type { Bounds } from "../three";
import type { Comparison, Graph, Maps } from "./client";
import { blockSize, defaultCollapsed, type Unit } from "./logic";

// --- the 3-D structure ----------------------------------------------------------------------------

/** Block colours by layer category (convscope.models._graph's categories, plus collapsed containers). */
export const CATEGORY_COLORS: Record<string, number> = {
  io: 0xe8eaed,
  conv: 0x4c8bf5,
  norm: 0x39bccf,
  activation: 0x57c27a,
  pool: 0xb07cf0,
  regularization: 0xc9a27e,
  reshape: 0x9aa0a6,
  merge: 0xf06292,
  dense: 0xf5a623,
  container: 0xffd166,
  other: 0x6f747c,
};

/** What the legend calls each category, in the order it lists them (roughly a network's order). */
export const CATEGORY_NAMES: [string, string][] = [
  ["io", "input"],
  ["conv", "convolution"],
  ["norm", "normalisation"],
  ["activation", "activation"],
  ["pool", "pooling"],
  ["regularization", "dropout"],
  ["reshape", "reshape / flatten"],
  ["merge", "merge (add, concat)"],
  ["dense", "dense (linear)"],
  ["container", "collapsed module (click to expand)"],
  ["other", "other"],
];

export const categoryOf = (category: string): string => (category in CATEGORY_COLORS ? category : "other");
export const colorOf = (category: string): number => CATEGORY_COLORS[categoryOf(category)];
export const cssColor = (c: number): string => `#${c.toString(16).padStart(6, "0")}`;

export interface LegendEntry {
  category: string;
  label: string;
  color: string; // css
  count: number; // how many blocks of it are drawn
}

/** The legend of the blocks drawn: one entry per category present, in CATEGORY_NAMES' order. */
export function legendEntries(units: Pick<Unit, "category">[]): LegendEntry[] {
  const counts = new Map<string, number>();
  for (const u of units) counts.set(categoryOf(u.category), (counts.get(categoryOf(u.category)) ?? 0) + 1);
  return CATEGORY_NAMES.filter(([c]) => counts.has(c)).map(([category, label]) => ({
    category, label, color: cssColor(CATEGORY_COLORS[category]), count: counts.get(category)!,
  }));
}

export const GAP = 1.2;
export const MAX_PLANES = 64;
export const PLANE = 1.6; // an opened layer's planes: side and gap
export const PLANE_GAP = 0.25;

/** Where a unit is drawn: a block of ``size`` from ``x`` along the model's axis (centred on y = z = 0),
 *  or (``wall``) the opened layer's maps as planes, ``cols`` across. */
export interface Placed {
  unit: Unit;
  x: number;
  size: [number, number, number];
  /** (``y``: where the wall stands, in front of every block, so that none covers it from the camera's side) */
  wall: { cols: number; count: number; planeHeight: number; y: number } | null;
}

/** The blocks along x in the order given, the opened layer as a wall of its maps (when it has more
 *  than one), and the box around all of them (what the camera must show). */
export function layoutUnits(units: Unit[], opened: string | null = null, openedMaps: Pick<Maps, "count" | "width" | "height"> | null = null): { placed: Placed[]; bounds: Bounds } {
  const maxSide = Math.max(1, ...units.map((u) => (u.shape && u.shape.length >= 2 ? u.shape[u.shape.length - 1] : 1)));
  const placed: Placed[] = [];
  let x = 0;
  const lo: [number, number, number] = [0, 0, 0], hi: [number, number, number] = [0, 0, 0];
  const grow = (a: [number, number, number], b: [number, number, number]) => {
    for (let k = 0; k < 3; k++) {
      lo[k] = Math.min(lo[k], a[k]);
      hi[k] = Math.max(hi[k], b[k]);
    }
  };
  for (const unit of units) {
    if (unit.id === opened && !unit.container && openedMaps && openedMaps.count > 1) {
      const count = Math.min(openedMaps.count, MAX_PLANES);
      const cols = Math.ceil(Math.sqrt(count)), rows = Math.ceil(count / cols);
      const planeHeight = PLANE * (openedMaps.height / Math.max(1, openedMaps.width));
      // (rows along x, centred on z = 0, facing -y: see wallPlane in structure3d.ts)
      const step = PLANE + PLANE_GAP;
      const width = cols * step - PLANE_GAP, height = (rows - 1) * step + planeHeight;
      const y = -Math.max(...units.map((u) => blockSize(u.shape, maxSide)[1] / 2));
      grow([x, y, -height / 2], [x + width, y, height / 2]);
      placed.push({ unit, x, size: [width, 0, height], wall: { cols, count, planeHeight, y } });
      x += width + GAP;
      continue;
    }
    const size = blockSize(unit.shape, maxSide);
    grow([x, -size[1] / 2, -size[2] / 2], [x + size[0], size[1] / 2, size[2] / 2]);
    placed.push({ unit, x, size, wall: null });
    x += size[0] + GAP;
  }
  return { placed, bounds: { min: lo, max: hi } };
}

/** Which of the structure's buttons have anything to do, and what their titles say. */
export function structureButtons(graph: Pick<Graph, "layers" | "containers">, collapsed: Set<string>): {
  expandAll: { disabled: boolean; title: string };
  collapse: { disabled: boolean; title: string };
} {
  if (!graph.containers.length) {
    const why = "this model has no nested modules: every layer is shown already";
    return { expandAll: { disabled: true, title: `nothing to expand: ${why}` }, collapse: { disabled: true, title: `nothing to collapse: ${why}` } };
  }
  const target = collapseTarget(graph);
  const same = target.size === collapsed.size && [...target].every((c) => collapsed.has(c));
  return {
    expandAll: collapsed.size
      ? { disabled: false, title: "show every layer of every module" }
      : { disabled: true, title: "nothing to expand: every module is expanded already" },
    collapse: same
      ? { disabled: true, title: "collapsed already: each module shown is one block" }
      : { disabled: false, title: "show modules as one block each (click one to expand it)" },
  };
}

/** What "collapse" collapses: the least that leaves about 30 blocks, or else the top-level modules. */
export function collapseTarget(graph: Pick<Graph, "layers" | "containers">): Set<string> {
  const chosen = defaultCollapsed(graph as Graph, 30);
  if (chosen.size) return chosen;
  return new Set(graph.containers.filter((c) => c.parent === null || !graph.containers.some((p) => p.id === c.parent)).map((c) => c.id));
}

/** A layer's name short enough to label a block: whole, or "…" and its end. */
export function shortLabel(id: string, max = 12): string {
  return id.length > max ? "…" + id.slice(-(max - 1)) : id;
}

export interface LabelSpot {
  id: string;
  x: number; // the block's centre across the screen (css px)
  top: number; // the screen y of the block's top and bottom
  bottom: number;
  width: number; // the label's size
  height: number;
  priority: number; // higher first
}

/** Where labels go: above their block, else below it, else (overlapping another label or out of the
 *  view) not shown; in priority order. Returns each shown label's top-left corner. */
export function placeLabels(spots: LabelSpot[], view: { width: number; height: number }, gap = 3): Map<string, { x: number; y: number }> {
  const taken: { x0: number; y0: number; x1: number; y1: number }[] = [];
  const out = new Map<string, { x: number; y: number }>();
  const order = spots.map((s, i) => ({ s, i })).sort((a, b) => b.s.priority - a.s.priority || a.i - b.i);
  for (const { s } of order) {
    const x0 = s.x - s.width / 2;
    for (const y0 of [s.top - gap - s.height, s.bottom + gap]) {
      const box = { x0, y0, x1: x0 + s.width, y1: y0 + s.height };
      if (box.x0 < 0 || box.y0 < 0 || box.x1 > view.width || box.y1 > view.height) continue;
      if (taken.some((t) => box.x0 < t.x1 + 2 && t.x0 < box.x1 + 2 && box.y0 < t.y1 && t.y0 < box.y1)) continue;
      taken.push(box);
      out.set(s.id, { x: box.x0, y: box.y0 });
      break;
    }
  }
  return out;
}

// --- colour bars ------------------------------------------------------------------------------------

/** A number for a scale's end: 3 significant digits, exponent form only where it is tiny or huge. */
export function formatValue(v: number, signed = false): string {
  if (!Number.isFinite(v)) return v > 0 ? "∞" : v < 0 ? "−∞" : "-";
  const a = Math.abs(v);
  let s = a === 0 ? "0" : a >= 1e4 || a < 1e-3 ? a.toExponential(1) : String(Number(a.toPrecision(3)));
  s = s.replace("e+", "e");
  if (v < 0 && a !== 0) return `−${s}`;
  return signed && a !== 0 ? `+${s}` : s;
}

export interface ColorScale {
  lo: number;
  hi: number;
  /** the diverging scale's middle, 0 (white: no difference); null for grey maps */
  mid: number | null;
  /** every map is drawn on its own range (lo and hi are then the widest over the maps shown) */
  perMap: boolean;
  /** the map whose own range this is (a hovered one), or null */
  map: number | null;
  note: string;
}

/** The range a colour bar shows for a set of maps (each map's 8-bit pixels span its own vmin..vmax):
 *  that of map ``f`` when one is hovered; else, where maps have ranges of their own, the span over
 *  them all; diverging maps (B − A) as ±their largest difference, centred on 0. */
export function colorScale(maps: Pick<Maps, "count" | "vmin" | "vmax" | "units">, palette: "grey" | "diverging", f: number | null = null): ColorScale | null {
  const n = Math.min(maps.count, maps.vmin.length, maps.vmax.length);
  if (n <= 0) return null;
  const finite = (v: number | null | undefined) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  const one = f !== null && f >= 0 && f < n ? f : null;
  const idx = one !== null ? [one] : [...Array(n).keys()];
  const perMap = one === null && n > 1 && idx.some((i) => finite(maps.vmin[i]) !== finite(maps.vmin[0]) || finite(maps.vmax[i]) !== finite(maps.vmax[0]));
  const what = maps.units != null ? "units" : "values";
  if (palette === "diverging") {
    const peak = Math.max(0, ...idx.map((i) => Math.max(Math.abs(finite(maps.vmin[i])), Math.abs(finite(maps.vmax[i])))));
    const note = one !== null ? `map ${one}: blue B < A, white equal, red B > A`
      : perMap ? "each map on its own ± range (the widest shown); blue B < A, red B > A; hover a map for its own"
      : "blue B < A, white equal, red B > A";
    return { lo: -peak, hi: peak, mid: 0, perMap, map: one, note };
  }
  const lo = Math.min(...idx.map((i) => finite(maps.vmin[i]))), hi = Math.max(...idx.map((i) => finite(maps.vmax[i])));
  const note = one !== null ? `map ${one}: black its min, white its max`
    : perMap ? "each map black to white over its own min…max (the span of all shown); hover a map for its own"
    : `black to white: the layer's ${what}`;
  return { lo, hi, mid: null, perMap, map: one, note };
}

// --- the comparison chart ---------------------------------------------------------------------------

export const DIVERGENCE_COLORS = { parting: "#ff4fa3", above: "#f5a623", below: "#4c8bf5", threshold: "#ff4fa3" } as const;
export const DIVERGENCE_AXIS = "relative change ‖B−A‖ / ‖A‖ (log)";
type Layer = Comparison["layers"][number];

/** A bar's class: where the inputs part ways, at or above the threshold, or below it. */
export function barKind(l: Pick<Layer, "layer" | "relative">, c: Pick<Comparison, "threshold" | "diverges_at">): "parting" | "above" | "below" {
  if (l.layer === c.diverges_at) return "parting";
  const v = l.relative === null ? Infinity : l.relative; // (a change from zero: infinite)
  return v >= c.threshold ? "above" : "below";
}

/** The chart's legend: what a bar, each colour and the dashed line mean (the colours present first). */
export function divergenceLegend(c: Pick<Comparison, "threshold" | "diverges_at" | "layers">): { key: string; swatch: "bar" | "dash"; color: string; text: string }[] {
  const t = formatValue(c.threshold);
  const kinds = new Set(c.layers.map((l) => barKind(l, c)));
  const entries = [
    { key: "below", swatch: "bar" as const, color: DIVERGENCE_COLORS.below, text: `below the threshold (< ${t})` },
    { key: "above", swatch: "bar" as const, color: DIVERGENCE_COLORS.above, text: `at or above the threshold (≥ ${t})` },
    {
      key: "parting", swatch: "bar" as const, color: DIVERGENCE_COLORS.parting,
      text: c.diverges_at
        ? `where A and B part ways (${c.diverges_at}): the first layer from which every later one stays ≥ ${t}`
        : `where A and B part ways: none here (no layer from which every later one stays ≥ ${t})`,
    },
    { key: "threshold", swatch: "dash" as const, color: DIVERGENCE_COLORS.threshold, text: `threshold ${t}: a change ${c.threshold === 0.5 ? "half" : `${t} times`} the size of A's output` },
  ];
  return entries.filter((e) => e.swatch === "dash" || kinds.has(e.key as ReturnType<typeof barKind>) || e.key === "parting");
}

/** A bar's tooltip: its layer and numbers. */
export function barTip(l: Layer, c: Pick<Comparison, "threshold" | "diverges_at">): string {
  const kind = barKind(l, c);
  const rel = l.relative === null ? "∞ (A is all zeros here)" : formatValue(l.relative);
  const parts = [`${l.layer}: relative change ${rel}`];
  if (l.l2 !== null) parts.push(`‖B−A‖ ${formatValue(l.l2)}`);
  if (l.cosine !== null) parts.push(`cosine ${l.cosine.toFixed(3)}`);
  const why = kind === "parting" ? "A and B part ways here" : kind === "above" ? "at or above the threshold" : "below the threshold";
  return `${parts.join(" · ")} — ${why}; click to show its maps`;
}
