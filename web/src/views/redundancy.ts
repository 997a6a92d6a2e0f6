// A layer's filters and how many of them are redundant, over the steps, from its ``groups``
// frames: counted here for the compare page's charts and for the dashboard's timeline under the
// correlation heatmap (drawn with uPlot as the scalars are: filters solid, redundant dashed, a
// step line from 0, the current step marked; a click on it goes to the recording nearest there).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { type Frame, isArray } from "../frames";
import { evenly } from "./evenly";
import { plural } from "./plural";
import { axisSize, axisValues, markStep, MOST_POINTS, SCALAR_COLORS, STEP_INCREMENTS } from "./scalars";

/** A layer's filters at one recording, from its ``groups`` frame: how many it has, how many of
 * them are redundant (in a correlation group beside another filter: the filters a pruning of its
 * groups could remove, all but one of each group), and in how many groups its grouped ones are. */
export interface GroupCounts {
  filters: number;
  redundant: number;
  groups: number;
}

/** The counts of a ``groups`` frame's ``labels`` (a filter's group id, -1 where it is in none):
 * the layer's width, its grouped filters less one per group, and its groups. */
export function groupCounts(labels: ArrayLike<number>): GroupCounts {
  const groups = new Set<number>();
  let grouped = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0) continue;
    grouped++;
    groups.add(labels[i]);
  }
  return { filters: labels.length, redundant: grouped - groups.size, groups: groups.size };
}

/** A run's filter counts, by layer, then step (a frame fetched, then streamed again, is kept once). */
export type RunRedundancy = Map<string, Map<number, GroupCounts>>;

/** Put the counts of the ``groups`` frames among ``frames`` into ``redundancy`` (a later one at a
 * step replaces an earlier one); other frames, and a groups frame without labels, are passed over. */
export function addRedundancy(redundancy: RunRedundancy, frames: Frame[]): RunRedundancy {
  for (const f of frames) {
    if (f.kind !== "groups") continue;
    const labels: unknown = f.payload.labels;
    const values = isArray(labels) ? labels.data : Array.isArray(labels) ? (labels as number[]) : null;
    if (!values) continue;
    let counts = redundancy.get(f.layer);
    if (!counts) redundancy.set(f.layer, (counts = new Map()));
    counts.set(f.step, groupCounts(values));
  }
  return redundancy;
}

/** Each layer's counts as ``[step, filters, redundant]`` rows, by step (what the dashboard's
 * timeline draws, as tests read it). */
export function redundancyRows(redundancy: RunRedundancy): Record<string, [number, number, number][]> {
  return Object.fromEntries([...redundancy].map(([layer, counts]) => [layer, countRows(counts)]));
}

/** One layer's ``counts`` as ``[step, filters, redundant]`` rows, by step. */
export function countRows(counts: Map<number, GroupCounts>): [number, number, number][] {
  return [...counts].sort(([a], [b]) => a - b).map(([step, c]) => [step, c.filters, c.redundant]);
}

/** The dashes of the redundant filters, under the solid filter count (here and on the compare page). */
export const REDUNDANT_DASH = [7, 4];
/** The timeline's colours: the filters in the scalars' blue, the redundant ones in their orange. */
export const FILTERS_COLOR = SCALAR_COLORS[1];
export const REDUNDANT_COLOR = SCALAR_COLORS[5];
const HEIGHT = 150;

/** The recording of ``counts`` the dashboard shows at ``step`` (the newest at or before it, as
 * the heatmap's frame is), with its step; null where there is none yet. */
export function countsAt(counts: Map<number, GroupCounts> | undefined, step: number): [number, GroupCounts] | null {
  let best: [number, GroupCounts] | null = null;
  for (const [s, c] of counts ?? []) if (s <= step && (!best || s > best[0])) best = [s, c];
  return best;
}

/** The counts at ``step`` in words: "step 300: 16 filters, 4 redundant (in 3 groups)", the step
 * being that of the recording read (see ``countsAt``). */
export function redundancyNow(counts: Map<number, GroupCounts> | undefined, step: number): string {
  if (!counts?.size) return "no filter groups recorded for this layer";
  const at = countsAt(counts, step);
  if (!at) return `no filter groups recorded by step ${step}`;
  const [s, c] = at;
  return `step ${s}: ${plural(c.filters, "filter")}, ${c.redundant} redundant (${c.groups ? `in ${plural(c.groups, "group")}` : "no group"})`;
}

/** The recorded step of ``steps`` (ascending) nearest ``value`` (the earlier on a tie): where a
 * click on the timeline goes. */
export function nearestStep(steps: number[], value: number): number {
  let lo = 0, hi = steps.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && value - steps[lo - 1] <= steps[lo] - value ? steps[lo - 1] : steps[lo];
}

/** The steps the timeline spans: from its first recording to the run's last step (so that the
 * current step is on it while the run goes on past the last recording). */
export function timelineRange(steps: number[], lastStep: number): [number, number] {
  const first = steps[0] ?? 0, last = Math.max(steps[steps.length - 1] ?? 0, lastStep);
  return first === last ? [first - 1, last + 1] : [first, last];
}

/** ``counts`` as uPlot's aligned data: the recorded steps (at most ``most``, evenly spread, the
 * last always), the filters and the redundant filters there. */
export function timelineData(counts: Map<number, GroupCounts>, most = MOST_POINTS): uPlot.AlignedData {
  const steps = evenly([...counts.keys()].sort((a, b) => a - b), most);
  return [steps, steps.map((s) => counts.get(s)!.filters), steps.map((s) => counts.get(s)!.redundant)];
}

/** The timeline's uPlot options: steps along x over ``range()``, the counts from 0 in whole
 * numbers, as step lines (a count holds until the next recording), the redundant ones dashed; no
 * drag-to-zoom (a click goes to a step). */
export function timelineOptions(width: number, range: () => [number, number], draw: (u: uPlot) => void = () => {}): uPlot.Options {
  const stepped = uPlot.paths.stepped?.({ align: 1 });
  return {
    width,
    height: HEIGHT,
    scales: {
      x: { time: false, range: () => range() },
      y: { range: (_u, _min, max) => [0, Math.max(1, Math.ceil((max ?? 1) * 1.1))] },
    },
    axes: [
      { stroke: "#9aa0a6", grid: { stroke: "#2a2e35" }, label: "step", labelFont: "12px system-ui, sans-serif", labelSize: 18, labelGap: 0,
        size: 30, incrs: STEP_INCREMENTS },
      { stroke: "#9aa0a6", grid: { stroke: "#2a2e35" }, values: axisValues, size: axisSize, incrs: STEP_INCREMENTS },
    ],
    series: [
      { label: "step" },
      { label: "filters", stroke: FILTERS_COLOR, width: 1.5, ...(stepped ? { paths: stepped } : {}) },
      { label: "redundant", stroke: REDUNDANT_COLOR, width: 1.5, dash: REDUNDANT_DASH, ...(stepped ? { paths: stepped } : {}) },
    ],
    // (the dashed line's key dotted: on so small a key, dashes would join up into a solid border)
    legend: { markers: { dash: (_u: uPlot, i: number) => (i === 2 ? "dotted" : "solid") } },
    cursor: { drag: { x: false, y: false } },
    hooks: { draw: [draw] },
  };
}

/** The dashboard's timeline of one layer's filters and redundant filters, with its words. */
export class RedundancyTimeline {
  plot: uPlot | null = null;
  private counts: Map<number, GroupCounts> | undefined;
  private key = "";
  private steps: number[] = [];
  private current = 0;
  private lastStep = 0;

  /** (``pick``: called with the recorded step nearest a click) */
  constructor(private readonly box: HTMLElement, private readonly words: HTMLElement, private readonly pick: (step: number) => void) {
    new ResizeObserver(() => {
      const width = this.box.clientWidth;
      if (this.plot && width > 0 && width !== this.plot.width) this.plot.setSize({ width, height: HEIGHT });
    }).observe(box);
  }

  /** Draw ``counts`` (the shown layer's: the same map, grown as frames arrive, or another
   * layer's), the run's ``lastStep``, and the ``current`` step marked and said in words. */
  update(counts: Map<number, GroupCounts> | undefined, current: number, lastStep: number): void {
    this.current = current;
    this.words.textContent = redundancyNow(counts, current);
    if (!counts?.size) {
      this.plot?.destroy();
      this.plot = null;
      this.counts = undefined;
      this.box.hidden = true;
      return;
    }
    this.box.hidden = false;
    // (a new recording, another layer or a later last step: the data and the step range again;
    // else only the marker moved)
    const key = `${counts.size}\u0000${lastStep}`;
    if (this.plot && counts === this.counts && key === this.key) {
      this.plot.redraw(false);
      return;
    }
    this.counts = counts;
    this.key = key;
    this.lastStep = lastStep;
    const data = timelineData(counts);
    this.steps = data[0] as number[];
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const options = timelineOptions(this.box.clientWidth || 400, () => timelineRange(this.steps, this.lastStep), (u) => markStep(u, this.current));
    this.plot = new uPlot(options, data, this.box);
    const over = this.plot.over;
    over.style.cursor = "pointer";
    over.addEventListener("click", (e) => {
      if (!this.plot || !this.steps.length) return;
      const value = this.plot.posToVal(e.clientX - over.getBoundingClientRect().left, "x");
      this.pick(nearestStep(this.steps, value));
    });
  }

}
