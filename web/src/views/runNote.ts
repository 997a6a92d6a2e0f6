// The line under a run's title: what the monitor was asked to record, and what it had to leave out
// (steps put off by the overhead budget, work dropped from a full queue, frames a sink dropped,
// old frames thinned), so that no one reads the gaps in a view as training behaviour.

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
    const asked = [...byEvery].sort((a, b) => a[0] - b[0]).map(([n, views]) => `${views.join(", ")} every ${n === 1 ? "step" : `${n} steps`}`);
    parts.push(`asked for ${asked.join("; ")}`);
  }
  const budget = drops.get("budget") ?? 0;
  if (budget > 0) {
    const share = typeof config.budget === "number" ? ` ${+(config.budget * 100).toFixed(1)}%` : "";
    parts.push(`${budget} recording step${budget === 1 ? "" : "s"} skipped to stay within the${share} overhead budget`);
  }
  for (const [sink, n] of drops) {
    if (sink === "budget" || n <= 0) continue;
    parts.push(sink === "queue" ? `${n} pieces of work dropped from a full queue` : `${n} frames dropped by ${sink}`);
  }
  if (thinned > 0) parts.push(`${thinned} older feature-map frames thinned to keep the run small`);
  if (resumes.length > 0) {
    const steps = [...resumes].sort((a, b) => a - b);
    parts.push(`training resumed at step${steps.length === 1 ? "" : "s"} ${steps.join(", ")}`);
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
