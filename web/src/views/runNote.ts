// The line under a run's title: what the monitor was asked to record, and what it had to leave out
// (steps put off by the overhead budget, frames lost to a full queue or a failing sink, old frames
// thinned), so that no one reads the gaps in a view as training behaviour. The Runs page marks
// the same drops in the same words (dropMarks).
import { count, noun, plural } from "./plural";

/** The cause of "dropped" counts that are recording steps the overhead budget deferred on purpose, not losses. */
export const DEFERRED = "budget";

/** What each cause of lost frames means (a sink not named here: "the <name> sink dropped them"). */
const CAUSES: Record<string, string> = {
  queue: "the monitor's queue was full",
  store: "the run store's commits failed",
  http: "the server never got them",
};

/** The run's drops, as the Runs page and the run's header say them: frames lost (an alarm, with a
 *  tooltip by cause) and recording steps the budget deferred (said apart, quietly). */
export interface DropMarks {
  lost?: DropMark;
  deferred?: DropMark;
}

export interface DropMark {
  total: number;
  /** the marker's few words: "⚠ 1,500 lost", "86 deferred" */
  mark: string;
  /** the sentence the run's note says */
  text: string;
  /** the marker's tooltip: the sentence, and what each cause means */
  title: string;
}

export function dropMarks(drops: Map<string, number> | Record<string, number>, budgetShare?: number): DropMarks {
  const entries = drops instanceof Map ? [...drops] : Object.entries(drops);
  const marks: DropMarks = {};
  const lost = entries.filter(([cause, n]) => cause !== DEFERRED && n > 0).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (lost.length > 0) {
    const total = lost.reduce((sum, [, n]) => sum + n, 0);
    const text = lostText(lost, total);
    const why = lost.map(([cause]) => `${cause}: ${CAUSES[cause] ?? `the ${cause} sink dropped them`}`).join("; ");
    marks.lost = { total, mark: `⚠ ${count(total)} lost`, text, title: `${text} (${why})` };
  }
  const deferred = entries.find(([cause]) => cause === DEFERRED)?.[1] ?? 0;
  if (deferred > 0) {
    const text = deferredText(deferred, budgetShare);
    marks.deferred = { total: deferred, mark: `${count(deferred)} deferred`, text, title: `${text}: deferred on purpose, not lost` };
  }
  return marks;
}

/** "1,520 frames lost: queue 1,500, http 20" (causes given largest first). */
function lostText(lost: [string, number][], total: number): string {
  return `${plural(total, "frame")} lost: ${lost.map(([cause, n]) => `${cause} ${count(n)}`).join(", ")}`;
}

/** "86 recording steps skipped to stay within the 3% overhead budget" (the share where known). */
function deferredText(steps: number, budgetShare?: number): string {
  const share = typeof budgetShare === "number" ? ` ${+(budgetShare * 100).toFixed(1)}%` : "";
  return `${plural(steps, "recording step")} skipped to stay within the${share} overhead budget`;
}

/** The newest count of each kind of drop, from the run's "dropped" frames (counts are running totals). */
export function countDrops(drops: Map<string, number>, payload: Record<string, unknown>): void {
  const sink = String(payload.sink ?? "queue");
  drops.set(sink, Math.max(drops.get(sink) ?? 0, Number(payload.count ?? 0)));
}

export function runNote(
  config: Record<string, any>, drops: Map<string, number>, thinned: number, resumes: number[] = [], diverged?: { step: number; layers: string[] },
): string {
  const parts: string[] = [];
  if (config.every && typeof config.every === "object") {
    const byEvery = new Map<number, string[]>();
    for (const [view, n] of Object.entries(config.every as Record<string, number>)) {
      byEvery.set(n, [...(byEvery.get(n) ?? []), view]);
    }
    const recorded = [...byEvery].sort((a, b) => a[0] - b[0]).map(([n, views]) => `${views.join(", ")} every ${n === 1 ? "step" : `${n} steps`}`);
    parts.push(`records ${recorded.join("; ")}`);
  }
  const marks = dropMarks(drops, typeof config.budget === "number" ? config.budget : undefined);
  if (marks.deferred) parts.push(marks.deferred.text);
  if (marks.lost) parts.push(marks.lost.text);
  if (thinned > 0) parts.push(`${thinned} older feature-map frames thinned to keep the run small`);
  if (resumes.length > 0) {
    const steps = [...resumes].sort((a, b) => a - b);
    parts.push(`training resumed at ${noun(steps.length, "step")} ${steps.join(", ")}`);
  }
  if (diverged) {
    // (the weights' views cannot be drawn from NaN: they stop at the last finite recording)
    parts.push(`training diverged at step ${diverged.step} (NaN or Inf in ${diverged.layers.join(", ")}): the weight and feature-map views stop before it`);
  }
  return parts.join(" · ");
}

/** The first recorded step at which gradient health found NaN or Inf, and in which layers. */
export function divergence(health: { step: number; layer: string; payload: Record<string, any> }[]): { step: number; layers: string[] } | undefined {
  let step = Infinity;
  for (const f of health) if (f.payload.status === "nonfinite" && f.step < step) step = f.step;
  if (step === Infinity) return undefined;
  const layers = [...new Set(health.filter((f) => f.step === step && f.payload.status === "nonfinite").map((f) => f.layer))].sort();
  return { step, layers };
}
