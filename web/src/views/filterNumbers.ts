// Filters keep their original numbers across prunings. A pruning takes filters out of a layer,
// and the layer's frames after it number the filters left 0..n-1; the views name each filter by
// its number before any pruning instead (the layer's own numbering at the start of the run), so
// that filter 5 stays filter 5 from the first step to the last. The run's pruning frames say
// which filters went: a pruned layer's `kept` (and `removed`), in its numbering just before that
// pruning, and `coupled` {layer: removed indices}, other layers that lost the same output
// filters with it (joined by a residual add or a depthwise conv). A layer that reads a pruned one
// keeps its own filters, with fewer input channels: those are numbered apart (inputNumbers), from
// the pruning frames' `inputs` {layer: removed input-channel indices, in that layer's input
// numbering just before}; a run recorded without `inputs` keeps the input channels' current numbers.
import type { Frame } from "../frames";

/** The original numbers of a layer's filters in one frame: ``numbers[i]`` is the original
 * number of the frame's filter ``i``; ``original`` how many filters the layer had at first. */
export interface FilterNames {
  numbers: number[];
  original: number;
}

const list = (v: unknown): number[] =>
  Array.isArray(v) ? v.map(Number) : v && typeof v === "object" && "data" in v ? Array.from((v as { data: ArrayLike<number> }).data, Number) : [];

/** One layer's loss of filters at one pruning: the new index ``j`` was ``before(j)`` just before. */
interface Cut {
  step: number;
  /** the filters kept, in the numbering just before (a pruned layer's own `kept`), or null */
  kept: number[] | null;
  /** the filters removed, in that numbering, sorted */
  removed: number[];
  /** how many filters it lost */
  lost: number;
}

/** Each pruning frame once (a live stream may send again what the page has read), in step order
 * (stable: frames of one step stay in the order they came). */
function ordered(prunings: Frame[]): Frame[] {
  const seen = new Set<string>();
  const out: Frame[] = [];
  for (const f of prunings) {
    if (f.kind !== "pruning") continue;
    const key = `${f.step}\u0000${f.layer}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(f);
  }
  return out.map((f, i) => [f, i] as const).sort(([a, i], [b, j]) => a.step - b.step || i - j).map(([f]) => f);
}

/** What ``layer`` lost at each pruning of ``prunings`` (its own, and those it was coupled to), oldest first. */
function cutsOf(prunings: Frame[], layer: string): Cut[] {
  const cuts: Cut[] = [];
  for (const f of ordered(prunings)) {
    const p = f.payload ?? {};
    if (f.layer === layer) {
      const kept = p.kept === undefined ? null : list(p.kept);
      const removed = list(p.removed).sort((a, b) => a - b);
      const lost = removed.length || (kept && Number(p.before) > kept.length ? Number(p.before) - kept.length : 0);
      cuts.push({ step: f.step, kept, removed, lost });
    } else if (p.coupled && typeof p.coupled === "object" && layer in p.coupled) {
      const removed = list((p.coupled as Record<string, unknown>)[layer]).sort((a, b) => a - b);
      cuts.push({ step: f.step, kept: null, removed, lost: removed.length });
    }
  }
  return cuts;
}

/** Index ``j`` after a cut, in the numbering just before it: the ``j``-th filter it kept. */
function before(cut: Cut, j: number): number {
  if (cut.kept && j < cut.kept.length) return cut.kept[j];
  let old = j;
  for (const r of cut.removed) {
    if (r <= old) old++;
    else break;
  }
  return old;
}

/** What ``layer`` lost of its input channels at each pruning of ``prunings`` (from the frames'
 * `inputs`), oldest first. */
function inputCutsOf(prunings: Frame[], layer: string): Cut[] {
  const cuts: Cut[] = [];
  for (const f of ordered(prunings)) {
    const inputs = f.payload?.inputs;
    if (!inputs || typeof inputs !== "object" || Array.isArray(inputs) || !(layer in inputs)) continue;
    const removed = list((inputs as Record<string, unknown>)[layer]).sort((a, b) => a - b);
    if (removed.length) cuts.push({ step: f.step, kept: null, removed, lost: removed.length });
  }
  return cuts;
}

/** The ``count`` indices of a frame of step ``step`` in the numbering before the ``cuts`` that
 * came before ``step``, composed oldest to newest (null: none came before). */
function compose(allCuts: Cut[], step: number, count: number): FilterNames | null {
  const cuts = allCuts.filter((c) => c.step < step);
  if (!cuts.length || count <= 0) return null;
  const numbers = Array.from({ length: count }, (_, i) => i);
  for (let k = cuts.length - 1; k >= 0; k--) for (let i = 0; i < count; i++) numbers[i] = before(cuts[k], numbers[i]);
  return { numbers, original: count + cuts.reduce((n, c) => n + c.lost, 0) };
}

/** The original numbers of the ``count`` filters of ``layer`` in a frame of step ``step``, from
 * the run's pruning frames (any order, other kinds ignored): the prunings before ``step`` apply
 * (a step's views are recorded before that step's pruning), composed oldest to newest. Null
 * where the layer had lost no filter by then: its numbers are the original ones. */
export function filterNumbers(prunings: Frame[], layer: string, step: number, count: number): FilterNames | null {
  return compose(cutsOf(prunings, layer), step, count);
}

/** The original numbers of the ``count`` input channels of ``layer`` (a conv or dense layer) in a
 * frame of step ``step``: as filterNumbers, from the pruning frames' `inputs[layer]` (the input
 * channels that pruning took from the layer, in its input numbering just before). Null where
 * the layer had lost no input channel by then, or the run's pruning frames say none (older runs
 * record no `inputs`): its input channels keep their current numbers. Independent of the
 * layer's own filters' numbering. */
export function inputNumbers(prunings: Frame[], layer: string, step: number, count: number): FilterNames | null {
  return compose(inputCutsOf(prunings, layer), step, count);
}

/** The original number of filter ``i`` (``i`` itself where the layer was never pruned). */
export function filterName(names: FilterNames | null | undefined, i: number): number {
  return names && i >= 0 && i < names.numbers.length ? names.numbers[i] : i;
}

/** What a view's note says once where the layer was pruned: which numbers it shows. */
export function numberingNote(names: FilterNames | null | undefined): string {
  return names ? `filters numbered as before pruning: ${names.numbers.length} of ${names.original} left` : "";
}

/** What the weight grid's note says once where the layer's input channels were pruned. */
export function inputNumberingNote(names: FilterNames | null | undefined): string {
  return names ? `input channels numbered as before pruning: ${names.numbers.length} of ${names.original} left` : "";
}

/** The removed filters of each pruning frame, by their original numbers (the numbering the
 * layer had before its earlier prunings): frame -> numbers. */
export function originalRemoved(prunings: Frame[]): Map<Frame, number[]> {
  const out = new Map<Frame, number[]>();
  const frames = ordered(prunings);
  frames.forEach((f, k) => {
    const removed = list(f.payload?.removed);
    const earlier = frames.slice(0, k);
    const before = Number(f.payload?.before);
    const count = Number.isFinite(before) && before > 0 ? before : removed.length ? Math.max(...removed) + 1 : 0;
    // the numbering the layer had just before this pruning: every pruning before it in order
    const names = filterNumbers(earlier, f.layer, Infinity, count);
    out.set(f, removed.map((i) => filterName(names, i)));
  });
  return out;
}
