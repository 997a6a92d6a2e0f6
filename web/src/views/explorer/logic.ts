// The explorer's pure logic, kept apart from the DOM so it is unit-tested (web/test/explorer.test.ts):
// the module hierarchy's collapse/expand, block sizes of the 3-D view, decoding maps and reading
// values back, and the grid the 2-D views lay maps out on.
import { noun, plural } from "../plural";
import type { Graph, GraphLayer, InputInfo, Maps, ModelInfo } from "./client";

/** One block of the structure view: a layer, or a collapsed container standing for its layers. */
export interface Unit {
  id: string;
  kind: string; // the layer's kind, or the container's type
  category: string; // "container" for collapsed containers
  shape: number[] | null; // output shape (a container's: its last layer's)
  layers: string[]; // graph layer ids it stands for, in execution order
  container: boolean;
  depth: number; // how many containers enclose it
}

/** Container ids enclosing a layer or container, outermost first. */
export function ancestors(graph: Graph, parent: string | null): string[] {
  const byId = new Map(graph.containers.map((c) => [c.id, c]));
  const chain: string[] = [];
  let p = parent;
  const seen = new Set<string>();
  while (p !== null && byId.has(p) && !seen.has(p)) {
    seen.add(p);
    chain.unshift(p);
    p = byId.get(p)!.parent;
  }
  return chain;
}

/** The blocks to draw: every layer, except those inside a collapsed container, which count once. */
export function visibleUnits(graph: Graph, collapsed: Set<string>): Unit[] {
  const types = new Map(graph.containers.map((c) => [c.id, c.type]));
  const units: Unit[] = [];
  const index = new Map<string, Unit>();
  for (const layer of graph.layers) {
    const chain = ancestors(graph, layer.parent);
    const closed = chain.findIndex((c) => collapsed.has(c));
    if (closed >= 0) {
      const id = chain[closed];
      let unit = index.get(id);
      if (!unit) {
        unit = { id, kind: types.get(id) ?? "container", category: "container", shape: null, layers: [], container: true, depth: closed };
        index.set(id, unit);
        units.push(unit);
      }
      unit.layers.push(layer.id);
      unit.shape = layer.output_shape;
    } else {
      units.push({ id: layer.id, kind: layer.kind, category: layer.category, shape: layer.output_shape, layers: [layer.id], container: false, depth: chain.length });
    }
  }
  return units;
}

function containerDepths(graph: Graph): Map<string, number> {
  return new Map(graph.containers.map((c) => [c.id, ancestors(graph, c.parent).length]));
}

/** The least collapsing that leaves at most maxUnits blocks: containers at depth >= d, d as deep as possible. */
export function defaultCollapsed(graph: Graph, maxUnits = 60): Set<string> {
  if (graph.layers.length <= maxUnits) return new Set();
  const depths = containerDepths(graph);
  const deepest = Math.max(0, ...depths.values());
  let chosen = new Set<string>();
  for (let d = deepest; d >= 0; d--) {
    chosen = new Set([...depths].filter(([, depth]) => depth >= d).map(([id]) => id));
    if (visibleUnits(graph, chosen).length <= maxUnits) break;
  }
  return chosen;
}

/** Expand one container (and, so it shows, every container enclosing it); collapse its children. */
export function expand(graph: Graph, collapsed: Set<string>, id: string): Set<string> {
  const next = new Set(collapsed);
  const container = graph.containers.find((c) => c.id === id);
  for (const a of ancestors(graph, container?.parent ?? null)) next.delete(a);
  next.delete(id);
  for (const c of graph.containers) if (c.parent === id) next.add(c.id);
  return next;
}

/** Collapse the container enclosing a layer or container (at the given depth from the top, default innermost). */
export function collapseAround(graph: Graph, collapsed: Set<string>, parent: string | null): Set<string> {
  const next = new Set(collapsed);
  if (parent !== null) next.add(parent);
  return next;
}

/** Block size [x, y, z] for a layer's output shape: x grows with log2(channels), y and z with sqrt(side). */
export function blockSize(shape: number[] | null, maxSide: number): [number, number, number] {
  if (!shape || shape.length === 0) return [0.6, 1, 1];
  if (shape.length === 1) {
    const h = 1 + 9 * Math.min(1, Math.log2(shape[0] + 1) / 12);
    return [0.6, 0.6, h];
  }
  const c = shape[0];
  const h = shape.length >= 2 ? shape[shape.length - 2] : 1;
  const w = shape[shape.length - 1];
  const side = (v: number) => 1 + 9 * Math.sqrt(Math.max(1, v) / Math.max(1, maxSide));
  return [0.4 + 0.35 * Math.log2(c + 1), side(w), side(h)];
}

export function formatShape(shape: number[] | null): string {
  return shape && shape.length ? shape.join("×") : "-";
}

/** What the model list says of a model: its format, trained or not where its source says (an
 * untrained zoo model's predictions are chance), its size and its input. */
export function modelSummary(m: Pick<ModelInfo, "format" | "source" | "layers" | "params" | "input_spec">): string {
  const how = /\(([^()]*)\)\s*$/.exec(m.source ?? "")?.[1]; // "zoo:vgg12 (untrained)", "zoo:lenet5 (trained on mnist-5k)"
  return `${m.format}${how ? ` (${how})` : ""}, ${m.layers} layers, ${m.params.toLocaleString()} params, input ${formatShape(m.input_spec.shape)}`;
}

/** The class ``input`` is labelled with, where that is one of a model taking ``modelShape``'s
 * classes: a sample's label counts where the model takes it as it is, not made over (a digit's
 * label 7 is no "horse" for a CIFAR-10 model, which sees it resized and in colour); else null. */
export function labelFor(input: Pick<InputInfo, "label" | "shape"> | undefined, modelShape: number[]): number | null {
  if (!input || input.label === null) return null;
  return input.shape.length === modelShape.length && input.shape.every((v, k) => v === modelShape[k]) ? input.label : null;
}

/** Base64 to bytes (atob is in browsers and in Node 16+). */
export function decodeBase64(data: string): Uint8Array {
  const bin = atob(data);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The value a pixel of map f stands for: vmin + v / 255 * (vmax - vmin). */
export function valueAt(maps: Maps, pixels: Uint8Array, f: number, x: number, y: number): number {
  const v = pixels[(f * maps.height + y) * maps.width + x];
  return maps.vmin[f] + (v / 255) * (maps.vmax[f] - maps.vmin[f]);
}

export interface Grid {
  columns: number;
  rows: number;
  cell: number; // css pixels per map pixel
  pad: number;
  width: number;
  height: number;
}

/** Lay out count maps of w x h in a width-wide area: as many columns as fit at >= minCell px per map. */
export function gridLayout(count: number, w: number, h: number, width: number, opts: { pad?: number; maxCell?: number; minSide?: number } = {}): Grid {
  const pad = opts.pad ?? 3;
  const minSide = opts.minSide ?? 24;
  const maxCell = opts.maxCell ?? 8;
  let cell = Math.max(minSide / Math.max(w, h), 1);
  let columns = Math.max(1, Math.floor((width + pad) / (w * cell + pad)));
  columns = Math.min(columns, Math.max(1, count));
  const fit = (width + pad) / columns - pad;
  cell = Math.max(cell, Math.min(maxCell, fit / Math.max(w, 1)));
  const rows = Math.max(1, Math.ceil(count / columns));
  return { columns, rows, cell, pad, width: columns * (w * cell + pad) - pad, height: rows * (h * cell + pad) - pad };
}

/** A row of map thumbnails (the layer table's outputs): as many maps as fit in maxWidth, each
 *  height tall and as wide as its aspect says (shrunk, aspect kept, where one alone is wider). */
export interface Strip {
  count: number;
  cellWidth: number;
  cellHeight: number;
  pad: number;
  width: number;
  height: number;
}

export function stripLayout(count: number, w: number, h: number, height: number, maxWidth: number, pad = 2): Strip {
  let cellHeight = height;
  let cellWidth = h > 0 ? (height * w) / h : height;
  if (cellWidth > maxWidth) {
    cellHeight = (cellHeight * maxWidth) / cellWidth;
    cellWidth = maxWidth;
  }
  const shown = Math.min(Math.max(0, count), Math.max(1, Math.floor((maxWidth + pad) / (cellWidth + pad))));
  const width = shown > 0 ? Math.ceil(shown * (cellWidth + pad) - pad) : 0;
  return { count: shown, cellWidth, cellHeight, pad, width, height };
}

/** Which map (and which pixel of it) is under css point (px, py) of a grid; null between maps. */
export function cellAt(grid: Grid, count: number, w: number, h: number, px: number, py: number): { f: number; x: number; y: number } | null {
  const cw = w * grid.cell + grid.pad, ch = h * grid.cell + grid.pad;
  const col = Math.floor(px / cw), row = Math.floor(py / ch);
  if (col < 0 || row < 0 || col >= grid.columns) return null;
  const f = row * grid.columns + col;
  if (f >= count) return null;
  const x = Math.floor((px - col * cw) / grid.cell), y = Math.floor((py - row * ch) / grid.cell);
  if (x >= w || y >= h) return null;
  return { f, x, y };
}

/** The unit of a dense layer's map under a pixel (null on the padding after the last unit). */
export function unitAt(maps: Pick<Maps, "width" | "units">, hit: { x: number; y: number }): number | null {
  if (maps.units == null) return null;
  const u = hit.y * maps.width + hit.x;
  return u < maps.units ? u : null;
}

/** Toggle filter f of a layer in a freeze set (layers with no frozen filter are dropped). */
export function toggleFrozen(freeze: Record<string, number[]>, layer: string, f: number): Record<string, number[]> {
  const next: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(freeze)) next[k] = [...v];
  const set = new Set(next[layer] ?? []);
  if (set.has(f)) set.delete(f);
  else set.add(f);
  if (set.size) next[layer] = [...set].sort((a, b) => a - b);
  else delete next[layer];
  return next;
}

/**
 * Compare's A and B once the inputs change: each kept while it exists; one that is gone falls back
 * to the first input the other is not, so two inputs left are never both A and B.
 */
export function comparePair(ids: string[], a: string, b: string): [string, string] {
  const keptA = ids.includes(a) ? a : "";
  const keptB = ids.includes(b) ? b : "";
  const nextA = keptA || (ids.find((id) => id !== keptB) ?? ids[0] ?? "");
  const nextB = keptB || (ids.find((id) => id !== nextA) ?? nextA);
  return [nextA, nextB];
}

/**
 * The server's sentence from an error's detail: a string as it is; FastAPI's validation list as
 * "where: what" per problem ("conv1.1: Input should be a valid integer").
 */
export function detailText(detail: unknown, fallback: string): string {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length) {
    return detail
      .map((d: { loc?: unknown[]; msg?: string }) => {
        const loc = (d.loc ?? []).filter((part, k) => !(k === 0 && (part === "body" || part === "query" || part === "path")));
        return `${loc.length ? `${loc.join(".")}: ` : ""}${d.msg ?? JSON.stringify(d)}`;
      })
      .join("; ");
  }
  return detail === undefined || detail === null ? fallback : JSON.stringify(detail);
}

/** Short text of a layer's outputs for lists: "6×28×28, 6 maps". */
export function describe(layer: Pick<GraphLayer, "id" | "kind" | "output_shape">): string {
  return `${layer.id} ${layer.kind} ${formatShape(layer.output_shape)}`;
}

/**
 * What the page calls each input, in the list, the compare menus and its messages alike: its name,
 * and where names repeat (two sketches, say) the later ones numbered, "sketch.png (2)"; never the
 * session's internal ids.
 */
export function inputNames(inputs: Pick<InputInfo, "id" | "name">[]): Map<string, string> {
  const names = new Map<string, string>();
  const seen = new Map<string, number>();
  const taken = new Set(inputs.map((i) => i.name));
  for (const i of inputs) {
    let k = (seen.get(i.name) ?? 0) + 1;
    let label = k === 1 ? i.name : `${i.name} (${k})`;
    while (k > 1 && taken.has(label)) label = `${i.name} (${++k})`; // (not the name of another input)
    seen.set(i.name, k);
    taken.add(label);
    names.set(i.id, label);
  }
  return names;
}

/** An attack runs on the model without its frozen filters: say so, with what the model with them predicts. */
export function frozenNote(a: Pick<NonNullable<InputInfo["adversarial"]>, "freeze" | "with_freeze">): string {
  const frozen = Object.values(a.freeze ?? {}).reduce((n, f) => n + f.length, 0);
  if (!frozen || !a.with_freeze) return "";
  const w = a.with_freeze;
  return ` (attacked without the ${plural(frozen, "frozen filter")}; with ${noun(frozen, "it", "them")}: ${w.original_name} → ${w.prediction_name})`;
}
