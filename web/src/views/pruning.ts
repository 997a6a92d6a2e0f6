// The prunings of a run in words, under the scalars (where their dashed lines are): which layer
// lost which filters at which step, why, and which layers lost the same filters with it. The
// filters by their original numbers (as the layer numbered them before any pruning, as every
// view does): a second pruning's frame numbers them as the first left them.
import type { Frame } from "../frames";
import { originalRemoved } from "./filterNumbers";
import { noun } from "./plural";

const list = (v: unknown): number[] => (Array.isArray(v) ? v.map(Number) : v && typeof v === "object" && "data" in v ? Array.from((v as { data: ArrayLike<number> }).data) : []);

/** One line per pruning frame, oldest first. */
export function pruningLines(frames: Frame[]): string[] {
  const original = originalRemoved(frames);
  return frames
    .filter((f) => f.kind === "pruning")
    .sort((a, b) => a.step - b.step)
    .map((f) => {
      const p = f.payload;
      const removed = original.get(f) ?? list(p.removed);
      const coupled = p.coupled && typeof p.coupled === "object" ? Object.keys(p.coupled as object) : [];
      const params = Number.isFinite(Number(p.params_before)) && Number.isFinite(Number(p.params_after))
        ? `; parameters ${Number(p.params_before).toLocaleString("en")} → ${Number(p.params_after).toLocaleString("en")}` : "";
      return `step ${f.step}: ${f.layer} ${p.before} → ${p.after} filters, removed ${noun(removed.length, "filter")} ${removed.join(", ")}` +
        (p.reason ? ` (${String(p.reason).split("; ")[0]})` : "") +
        (coupled.length ? `; ${coupled.join(", ")} lost the same` : "") + params;
    });
}

/** The filters each conv layer of a run's model graph (its ``meta.graph``) had at the start: layer id
 * to count (a graph without layers, or a layer without a ``filters`` attribute, gives none). */
export function graphFilters(graph: unknown): Map<string, number> {
  const out = new Map<string, number>();
  const layers = graph && typeof graph === "object" ? (graph as { layers?: unknown }).layers : undefined;
  if (!Array.isArray(layers)) return out;
  for (const l of layers) {
    const n = Number(l?.attributes?.filters);
    if (typeof l?.id === "string" && Number.isFinite(n) && n > 0) out.set(l.id, n);
  }
  return out;
}

/** The layers a run's prunings took filters from: each pruned layer and those that lost the same. */
export function prunedLayers(frames: Frame[]): Set<string> {
  const out = new Set<string>();
  for (const f of frames) {
    if (f.kind !== "pruning") continue;
    out.add(f.layer);
    if (f.payload.coupled && typeof f.payload.coupled === "object") for (const l of Object.keys(f.payload.coupled)) out.add(l);
  }
  return out;
}

/** How many filters ``layer`` had over a run's steps, from ``first`` to ``last``: as a step
 * line (step to count, each count holding until the next step), from its prunings' frames, or from
 * ``initial`` (its size in the model graph) where none of them touched it (null: neither says).
 * A layer that lost the same filters as a pruned one (``coupled``) drops by as many as it lost. */
export function filterCounts(frames: Frame[], layer: string, initial: number | undefined, first: number, last: number): Map<number, number> | null {
  const events = frames
    .filter((f) => f.kind === "pruning" && (f.layer === layer || (f.payload.coupled && typeof f.payload.coupled === "object" && layer in f.payload.coupled)))
    .sort((a, b) => a.step - b.step);
  const start = initial ?? (events.length ? Number(events[0].payload.before) : NaN);
  if (!Number.isFinite(start)) return null;
  const line = new Map<number, number>();
  const from = Math.min(first, events[0]?.step ?? first);
  line.set(from, start);
  let count = start;
  const seen = new Set<number>();
  for (const f of events) {
    if (seen.has(f.step)) continue; // (a frame that came twice: the page's fetch and the live stream)
    seen.add(f.step);
    count = f.layer === layer ? Number(f.payload.after) : count - list(f.payload.coupled[layer]).length;
    line.set(f.step, count);
  }
  const end = Math.max(last, ...line.keys());
  if (!line.has(end)) line.set(end, count);
  return line;
}
