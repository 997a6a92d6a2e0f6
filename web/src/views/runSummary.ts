// A run at a glance, as the Runs page's columns say it (from the summary its writer keeps with
// the frames, so a listing of many long runs reads one small row each): the last values of a few
// scalars, the layers its gradient checks flagged, and the filters its prunings left.
import type { LastValue, LayerFilters, LayerHealth, RunSummary } from "../api";
import { STATUS_COLORS } from "../colors";
import { count, noun, plural } from "./plural";

/** How many scalars the "last values" cell shows (every one is in its tooltip). */
export const SHOWN_SCALARS = 3;

/** A scalar's value in 4 significant digits, no trailing zeros ("0.8123", "0.9", "12350", "1.5e-7");
 * one that is not finite (the server says "nan", "inf" or "-inf") as NaN, ∞ or −∞. An accuracy
 * stays a number in [0, 1]: nothing says whether a name means a fraction or percent. */
export function formatValue(value: number | string, digits = 4): string {
  const v = typeof value === "number" ? value : Number(value === "inf" ? Infinity : value === "-inf" ? -Infinity : NaN);
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  return String(Number(v.toPrecision(digits)));
}

/** Scalar names in the order the Runs page shows them: ``loss`` first, then names with ``acc`` in
 * them (accuracy, val_acc), then the rest, each part alphabetically. */
export function scalarOrder(names: Iterable<string>): string[] {
  const rank = (n: string) => (n === "loss" ? 0 : n.toLowerCase().includes("acc") ? 1 : 2);
  return [...names].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

export interface LastValues {
  /** the first few names and their values, as the cell shows them */
  shown: { name: string; value: string }[];
  /** how many more the tooltip names */
  more: number;
  /** every name = value (at step N), one a line */
  title: string;
}

export function lastValues(scalars: Record<string, LastValue>, shown = SHOWN_SCALARS): LastValues {
  const names = scalarOrder(Object.keys(scalars));
  return {
    shown: names.slice(0, shown).map((name) => ({ name, value: formatValue(scalars[name].value) })),
    more: Math.max(0, names.length - shown),
    title: names.map((name) => `${name} = ${formatValue(scalars[name].value, 6)} (at step ${count(scalars[name].step)})`).join("\n"),
  };
}

export interface HealthMark {
  layer: string;
  /** the layer's last check's status */
  status: string;
  /** the marker's colour: the status's */
  color: string;
  /** "conv1 stalled (12 of 60 checks)" */
  text: string;
}

export interface HealthCell {
  /** one per layer some check flagged, in the order the run first checked them */
  flagged: HealthMark[];
  /** "healthy" where every check of every layer was (said quietly); "" where there are none, or flags */
  quiet: string;
  /** every layer in words: its last check and how many checks flagged it */
  title: string;
}

/** The gradient health column: each flagged layer (some check said other than healthy) with its
 * last status and how many of its checks flagged it; a quiet "healthy" where none ever did. */
export function healthCell(health: Record<string, LayerHealth>): HealthCell {
  const layers = Object.entries(health);
  const flagged = layers
    .filter(([, h]) => h.flagged > 0 || h.status !== "healthy")
    .map(([layer, h]) => ({
      layer,
      status: h.status,
      color: STATUS_COLORS[h.status] ?? STATUS_COLORS.stalled,
      // (a layer flagged before and healthy at its last check says so: "conv1 healthy now (flagged 3 of 8 checks)")
      text:
        h.status === "healthy"
          ? `${layer} healthy now (flagged ${count(h.flagged)} of ${plural(h.checks, "check")})`
          : `${layer} ${h.status} (${count(h.flagged)} of ${plural(h.checks, "check")})`,
    }));
  const title = layers
    .map(([layer, h]) => {
      const flags = h.flagged > 0 ? `${count(h.flagged)} of ${plural(h.checks, "check")} flagged it` : `all ${plural(h.checks, "check")} healthy`;
      return `${layer}: ${h.status} at step ${count(h.step)} (its last check); ${flags}`;
    })
    .join("\n");
  return { flagged, quiet: layers.length > 0 && flagged.length === 0 ? "healthy" : "", title };
}

export interface FilterChange {
  layer: string;
  /** "conv1 16 → 12" */
  text: string;
  /** "conv1: 16 filters before pruning, 12 after; pruned 2 times (steps 300 to 900)" */
  title: string;
}

/** The filters column: each pruned layer's filters before its first pruning and after its last. */
export function filterChanges(filters: Record<string, LayerFilters>): FilterChange[] {
  return Object.entries(filters).map(([layer, f]) => {
    const times = f.prunings === 1 ? "once" : `${count(f.prunings)} ${noun(f.prunings, "time")}`;
    const when = f.prunings === 1 ? ` at step ${count(f.step)}` : ` (steps ${count(f.first_step)} to ${count(f.step)})`;
    return {
      layer,
      text: `${layer} ${f.before} → ${f.after}`,
      title: `${layer}: ${plural(f.before, "filter")} before pruning, ${count(f.after)} after; pruned ${times}${when}`,
    };
  });
}

/** A summary for a run the server said none of (an older server): nothing to show. */
export const NO_SUMMARY: RunSummary = { scalars: {}, health: {}, filters: {} };
