// Runs side by side (the #/compare page): one chart per scalar any of them logged, per layer a
// pruning took filters from its filter count, per layer whose gradient health was checked its
// gradient norm, the checks that flagged it marked, and per layer whose filters were grouped its
// filters and how many of them are redundant; one line per run (two on a redundancy chart), each
// run in its own colour on every chart. Drawn with uPlot as the dashboard's scalars are, with the
// same axes.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { STATUS_COLORS } from "../colors";
import type { Frame } from "../frames";
import { evenly } from "./evenly";
import { plural } from "./plural";
import { type GroupCounts, REDUNDANT_DASH, type RunRedundancy } from "./redundancy";
import { axisLabel, axisSize, axisValues, MOST_POINTS, SCALAR_COLORS, STEP_INCREMENTS, type ScalarLine } from "./scalars";

/** The runs' colours, in the page's order of the runs: the scalar chart's, then three more that
 * read on the dark panels and are told apart from those. */
export const RUN_COLORS = [...SCALAR_COLORS, "#f783ac", "#e9ecef", "#9775fa"];
/** Past as many runs as there are colours, the colours come round again dashed, thus. */
const DASHES = [[8, 4], [2, 3], [10, 3, 2, 3]];

export interface RunStyle {
  stroke: string;
  /** the line's width in CSS pixels: the first runs' wider, so that where lines are the same (a
   * learning rate, the steps before a pruning) the ones under show at the edges of the ones over */
  width: number;
  /** a dash pattern, for runs past the first RUN_COLORS.length (null: solid) */
  dash: number[] | null;
}

/** How the ``index``-th run of a comparison is drawn: a colour of its own, and where the colours
 * have come round, a dash pattern that tells it from the run of the same colour. */
export function runStyle(index: number): RunStyle {
  const round = Math.floor(index / RUN_COLORS.length);
  return { stroke: RUN_COLORS[index % RUN_COLORS.length], width: Math.max(1.25, 3.5 - 1.5 * index),
    dash: round === 0 ? null : DASHES[(round - 1) % DASHES.length] };
}

const FILTERS = "/filters";
const GRAD_NORM = "/grad_norm";
const REDUNDANCY = "/redundancy";

/** The layer before ``suffix`` in the chart ``name``, or null where ``name`` is not a layer's chart of it. */
const layerOf = (name: string, suffix: string): string | null =>
  name.endsWith(suffix) && name.length > suffix.length ? name.slice(0, -suffix.length) : null;

/** The name of the chart of ``layer``'s filter count (as the TensorBoard export names it). */
export const filtersName = (layer: string): string => layer + FILTERS;

/** The layer whose filter count the chart ``name`` is, or null for a logged scalar. */
export const filtersLayer = (name: string): string | null => layerOf(name, FILTERS);

/** The name of the chart of ``layer``'s gradient norm (as the TensorBoard export names it). */
export const gradNormName = (layer: string): string => layer + GRAD_NORM;

/** The layer whose gradient norm the chart ``name`` is, or null for another chart. */
export const gradNormLayer = (name: string): string | null => layerOf(name, GRAD_NORM);

/** The name of the chart of ``layer``'s filter redundancy. */
export const redundancyName = (layer: string): string => layer + REDUNDANCY;

/** The layer whose filter redundancy the chart ``name`` is, or null for another chart. */
export const redundancyLayer = (name: string): string | null => layerOf(name, REDUNDANCY);

/** Whether the chart ``name`` counts filters (a step line on an axis from 0, in whole numbers). */
const countsFilters = (name: string): boolean => filtersLayer(name) !== null || redundancyLayer(name) !== null;

/** Where a chart comes on the page: losses first, then the other values logged, learning rates,
 * the filter counts, and last the gradient norms. */
function rank(name: string): number {
  if (gradNormLayer(name) !== null) return 4;
  if (filtersLayer(name) !== null) return 3;
  if (/^(lr|learning)/i.test(name)) return 2;
  return /loss/i.test(name) ? 0 : 1;
}

/** ``names`` in the page's order (see ``rank``; alphabetical within a rank). */
export function chartOrder(names: Iterable<string>): string[] {
  return [...new Set(names)].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** One run's lines, as the page holds them: its id and its values by name, then step. */
export interface RunLines {
  run: string;
  lines: Map<string, ScalarLine>;
}

/** One chart of a comparison: its name, and the runs that have a value of it (in the page's order,
 * with their place in it, which gives their colour). A run without one is not on the chart. */
export interface CompareChartSpec {
  name: string;
  runs: { run: string; index: number; line: ScalarLine }[];
}

/** The charts of a comparison of ``runs``: one per name some run has a value of. */
export function compareCharts(runs: RunLines[]): CompareChartSpec[] {
  const names = chartOrder(runs.flatMap((r) => [...r.lines].filter(([, l]) => l.size > 0).map(([n]) => n)));
  return names.map((name) => ({
    name,
    runs: runs.flatMap((r, index) => {
      const line = r.lines.get(name);
      return line && line.size > 0 ? [{ run: r.run, index, line }] : [];
    }),
  }));
}

/** One gradient-health check of a layer: its gradient norm, the status the run's tracker gave it
 * (``healthy`` while a quiet status is still held back: see convscope.analysis.gradients) and the
 * rules that fired, in words. */
export interface HealthCheck {
  norm: number;
  status: string;
  reasons: string[];
}

/** A run's gradient-health checks, by layer, then step (a check fetched, then streamed again, is kept once). */
export type RunHealth = Map<string, Map<number, HealthCheck>>;

/** Put the checks of the ``gradient_health`` frames among ``frames`` into ``health`` (a later one at
 * a step replaces an earlier one); other frames are passed over. */
export function addHealth(health: RunHealth, frames: Frame[]): RunHealth {
  for (const f of frames) {
    if (f.kind !== "gradient_health") continue;
    let checks = health.get(f.layer);
    if (!checks) health.set(f.layer, (checks = new Map()));
    const reasons = Array.isArray(f.payload.reasons) ? (f.payload.reasons as unknown[]).map(String) : [];
    checks.set(f.step, { norm: Number(f.payload.grad_norm), status: String(f.payload.status), reasons });
  }
  return health;
}

/** Each checked layer's gradient norm over the steps, by its chart's name (``gradNormName``); a norm
 * that is not a finite number is left out of the line (its check is still marked if flagged). */
export function gradNormLines(health: RunHealth): Map<string, ScalarLine> {
  const lines = new Map<string, ScalarLine>();
  for (const [layer, checks] of health) {
    const line: ScalarLine = new Map();
    for (const [step, c] of checks) if (Number.isFinite(c.norm)) line.set(step, c.norm);
    lines.set(gradNormName(layer), line);
  }
  return lines;
}

/** What one run's gradient health flagged one layer as, one status: the step it was first, the
 * stretches of consecutive checks that gave it (each's first and last step), how many of the
 * layer's checks did, and the rules that fired at the first. */
export interface HealthFlag {
  status: string;
  from: number;
  spans: [number, number][];
  checks: number;
  of: number;
  reasons: string[];
}

/** The flags of one layer's ``checks`` in one run: one per status other than healthy that its
 * tracker gave, in the order they were first given. ``total``: how many checks the layer has in
 * all, where the page was sent only some (a long run's series, thinned to its flagged checks and
 * evenly spread healthy ones): each flag's share counts them all. */
export function healthFlags(checks: Map<number, HealthCheck>, total = 0): HealthFlag[] {
  const steps = [...checks.keys()].sort((a, b) => a - b);
  const of = Math.max(total, steps.length);
  const flags = new Map<string, HealthFlag>();
  let previous = "";
  for (const step of steps) {
    const { status, reasons } = checks.get(step)!;
    if (status !== "healthy") {
      let flag = flags.get(status);
      if (!flag) flags.set(status, (flag = { status, from: step, spans: [], checks: 0, of, reasons }));
      if (previous === status) flag.spans[flag.spans.length - 1][1] = step;
      else flag.spans.push([step, step]);
      flag.checks++;
    }
    previous = status;
  }
  return [...flags.values()];
}

/** Each layer's gradient-health checks that a read of a run was not sent: the run's stored count
 * of them (``counts``, the run's details, by "kind:layer") less the read's own (``frames``), where
 * the series was thinned to its flagged checks and evenly spread healthy ones. */
export function unsentChecks(counts: Record<string, number> | undefined, frames: Frame[]): Map<string, number> {
  const sent = new Map<string, number>();
  for (const f of frames) if (f.kind === "gradient_health") sent.set(f.layer, (sent.get(f.layer) ?? 0) + 1);
  const unsent = new Map<string, number>();
  for (const [layer, n] of sent) {
    const stored = counts?.[`gradient_health:${layer}`] ?? 0;
    if (stored > n) unsent.set(layer, stored - n);
  }
  return unsent;
}

/** A flag in words: "stalled from step 30 · steps 30–150 (13 of 15 checks): 100.0% of gradients
 * exactly zero (>= 99%): units dead"; of its stretches, the first ``most`` (then how many more). */
export function flagText(flag: HealthFlag, most = 3): string {
  const of = `of ${plural(flag.of, "check")}`;
  const spans = flag.spans.slice(0, most).map(([a, b]) => (a === b ? String(a) : `${a}–${b}`)).join(", ");
  const more = flag.spans.length > most ? ` and ${plural(flag.spans.length - most, "more stretch", "more stretches")}` : "";
  const where = flag.checks === 1 ? ` (1 ${of})` : ` · steps ${spans}${more} (${flag.checks} ${of})`;
  return `${flag.status} from step ${flag.from}${where}${flag.reasons.length ? `: ${flag.reasons.join("; ")}` : ""}`;
}

/** A layer's checks in one run that flagged nothing, in words. */
export const healthyText = (checks: number): string => (checks === 1 ? "healthy at its one check" : `healthy at all ${plural(checks, "check")}`);

/** Each flag's marker (on its run's line, and before its words): a shape of its own, so that it
 * reads without its colour too; points around (0, 0) within 1, y down. */
const FLAG_SHAPES: Record<string, [number, number][]> = {
  exploding: [[0, -1], [0.95, 0.75], [-0.95, 0.75]], // (up)
  vanishing: [[0, 1], [0.95, -0.75], [-0.95, -0.75]], // (down)
  stalled: [[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]],
  nonfinite: [[0, -1], [1, 0], [0, 1], [-1, 0]],
};
/** The statuses that flag a layer, in the key's order. */
export const FLAGS = Object.keys(FLAG_SHAPES);
const flagShape = (status: string) => FLAG_SHAPES[status] ?? FLAG_SHAPES.nonfinite;
const flagColour = (status: string) => STATUS_COLORS[status] ?? "#555";
/** The markers' outline: light, so that a marker stands out from the line under it (an exploding
 * check's red on a red run's line) and from the dark panel alike. */
const FLAG_EDGE = "#e9ecef";

/** The marker of a check flagged ``status``, as an inline SVG (for the key and the flags' words). */
export function flagMarker(status: string): string {
  const points = flagShape(status).map(([x, y]) => `${6 + 5 * x},${6 + 5 * y}`).join(" ");
  return `<svg class="cmp-flag-mark" viewBox="0 0 12 12" width="12" height="12" aria-hidden="true"><polygon points="${points}" fill="${flagColour(status)}" stroke="${FLAG_EDGE}" stroke-width="1"/></svg>`;
}

/** One layer's ``counts`` in one run as the chart's two lines: its filters, and its redundant filters. */
export function redundancyLines(counts: Map<number, GroupCounts>): { filters: ScalarLine; redundant: ScalarLine } {
  const filters: ScalarLine = new Map(), redundant: ScalarLine = new Map();
  for (const [step, c] of counts) {
    filters.set(step, c.filters);
    redundant.set(step, c.redundant);
  }
  return { filters, redundant };
}

/** One layer's ``counts`` in one run, in words, from its first recording to its last:
 * "16 → 12 filters, 4 → 0 redundant (steps 0–1500)" (a count that ended as it began, once). */
export function redundancyText(counts: Map<number, GroupCounts>): string {
  const steps = [...counts.keys()].sort((a, b) => a - b);
  if (!steps.length) return "no filter groups recorded";
  const first = counts.get(steps[0])!, last = counts.get(steps[steps.length - 1])!;
  const change = (a: number, b: number) => (a === b ? String(a) : `${a} → ${b}`);
  const when = steps.length === 1 ? `step ${steps[0]}` : `steps ${steps[0]}–${steps[steps.length - 1]}`;
  return `${change(first.filters, last.filters)} filters, ${change(first.redundant, last.redundant)} redundant (${when})`;
}

/** One redundancy chart of a comparison: its layer, and the runs that grouped its filters (in the
 * page's order, with their place in it, which gives their colour). */
export interface RedundancyChartSpec {
  name: string;
  layer: string;
  runs: { run: string; index: number; counts: Map<number, GroupCounts> }[];
}

/** The redundancy charts of a comparison of ``runs``: one per layer some run grouped, by name. */
export function redundancyCharts(runs: { run: string; redundancy: RunRedundancy }[]): RedundancyChartSpec[] {
  const layers = [...new Set(runs.flatMap((r) => [...r.redundancy].filter(([, c]) => c.size > 0).map(([layer]) => layer)))].sort();
  return layers.map((layer) => ({
    name: redundancyName(layer),
    layer,
    runs: runs.flatMap((r, index) => {
      const counts = r.redundancy.get(layer);
      return counts && counts.size > 0 ? [{ run: r.run, index, counts }] : [];
    }),
  }));
}

/** A run's redundant filters are dashed under its solid filter count (``REDUNDANT_DASH``); where the
 * run's colour has come round and its lines are dashed already, dotted. */
const REDUNDANT_DOTS = [1.5, 3];

/** How a run of ``style`` draws its redundant filters: its colour, dashed. */
export const redundantStyle = (style: RunStyle): RunStyle => ({ ...style, dash: style.dash ? REDUNDANT_DOTS : REDUNDANT_DASH });

/** The linear threshold of a gradient-norm chart's scale (uPlot's arcsinh: logarithmic above it,
 * linear down to 0 under it): the power of ten at or under the smallest norm above 0, so that
 * every norm is on the logarithmic part and a norm of 0 (a layer whose units died) sits under them. */
export function normThreshold(lines: ScalarLine[]): number {
  let least = Infinity;
  for (const l of lines) for (const v of l.values()) if (v > 0 && v < least) least = v;
  return least === Infinity ? 1 : decade(Math.floor(Math.log10(least)));
}

/** 10 to the ``exp`` (written, not computed: 10 ** -5 is not 1e-5). */
const decade = (exp: number): number => Number(`1e${exp}`);

/** ``lines`` as uPlot's aligned data: every step any of them has (of each, at most ``most``
 * evenly spread, its last always), ascending, and each line's values there (null where it has none:
 * the line spans the gap). With ``hold`` (step lines: a count holds until it changes), a line has
 * its last value at the steps between its own, so that pointing there reads it. */
export function alignLines(lines: ScalarLine[], most = MOST_POINTS, hold = false): uPlot.AlignedData {
  const shown = lines.map((l) => evenly([...l.keys()].sort((a, b) => a - b), most));
  const steps = [...new Set(shown.flat())].sort((a, b) => a - b);
  return [steps, ...lines.map((l, i) => {
    const own = shown[i];
    let value: number | null = null;
    return steps.map((s) => {
      const v = l.get(s);
      if (v !== undefined) return (value = v);
      return hold && own.length && s > own[0] && s < own[own.length - 1] ? value : null;
    });
  })];
}

/** A run's line on a chart. */
export interface ChartLine {
  run: string;
  /** the legend's words for the run */
  label: string;
  style: RunStyle;
  line: ScalarLine;
  /** steps to mark with a dashed line of the run's colour (its prunings) */
  marks: number[];
  /** the checks to mark on the line, each with its flag's marker (a gradient-norm chart's) */
  flags?: { step: number; value: number; status: string }[];
}

/** The uPlot options of a comparison chart of ``name`` with ``lines``: the steps along x (whole
 * steps; over ``steps()``, the page's range, where it gives one, so that every chart lines up), one
 * value axis; a filter count (and a redundancy chart's counts) as a step line, its axis from 0; a
 * gradient norm on a logarithmic axis (down to 0 where a norm is 0: see ``normThreshold``), its
 * values in the hover legend as the axis writes them (a norm of 5e+13 is not "53,700,000,000,000").
 * The cursor is synced across the page's charts: pointing at a step on one reads every chart's
 * values there. */
export function compareOptions(name: string, lines: ChartLine[], width: number, draw: (u: uPlot) => void = () => {},
  steps: () => [number, number] | null = () => null): uPlot.Options {
  const counts = countsFilters(name);
  const norms = gradNormLayer(name) !== null;
  const floor = norms ? normThreshold(lines.map((l) => l.line)) : 1;
  const stepped = counts ? uPlot.paths.stepped?.({ align: 1 }) : undefined;
  return {
    width,
    height: 200,
    scales: {
      x: { time: false, range: (_u, min, max) => steps() ?? (min === max ? [min - 1, max + 1] : [min, max]) },
      y: counts ? { range: (_u, _min, max) => [0, Math.max(1, Math.ceil((max ?? 1) * 1.1))] }
        : norms ? normScale(floor) : {},
    },
    axes: [
      { stroke: "#9aa0a6", grid: { stroke: "#2a2e35" }, label: "step", labelFont: "12px system-ui, sans-serif", labelSize: 18, labelGap: 0,
        size: 30, incrs: STEP_INCREMENTS },
      { stroke: "#9aa0a6", grid: { stroke: "#2a2e35" }, scale: "y", values: axisValues, size: axisSize, ...(counts ? { incrs: STEP_INCREMENTS } : {}),
        // (a norm's own ticks, all labelled: uPlot's logarithmic ones are filtered to fit, to none at all over many decades)
        ...(norms ? { splits: (_u: uPlot, _i: number, min: number, max: number) => normSplits(min, max, floor), filter: (_u: uPlot, splits: number[]) => splits } : {}) },
    ],
    series: [
      { label: "step" },
      ...lines.map((l) => ({
        label: l.label,
        stroke: l.style.stroke,
        width: l.style.width,
        scale: "y",
        spanGaps: true,
        ...(l.style.dash ? { dash: l.style.dash } : {}),
        ...(stepped ? { paths: stepped } : {}),
        ...(norms ? { value: (_u: uPlot, v: number | null) => (v === null ? "--" : axisLabel(v)) } : {}),
      })),
    ],
    // (a dashed line's key in the legend dotted: a redundancy chart's two lines of a run, a run past the
    // colours; on so small a key, dashes would join up into a solid border)
    legend: { markers: { dash: (_u: uPlot, i: number) => (lines[i - 1]?.style.dash ? "dotted" : "solid") } },
    cursor: { sync: { key: "convscope-compare" } },
    hooks: { draw: [draw] },
  };
}

/** A gradient-norm axis' ticks from ``min`` to ``max`` (its scale's threshold ``floor``: see
 * ``normThreshold``): 0 where it is in range, and from ``floor`` up the decades (over fewer than
 * two, each one's 1, 2 and 5; over more than five, every second or third ...: about five in all). */
export function normSplits(min: number, max: number, floor: number): number[] {
  const ticks = min <= 0 && max >= 0 ? [0] : [];
  const lo = Math.floor(Math.log10(Math.max(min, floor))), hi = Math.floor(Math.log10(Math.max(max, floor)));
  const every = Math.ceil((hi - lo + 1) / 5);
  for (let e = lo; e <= hi; e += every) for (const m of hi - lo < 2 ? [1, 2, 5] : [1]) {
    const v = Number((m * decade(e)).toPrecision(1));
    if (v > 0 && v >= min && v <= max) ticks.push(v);
  }
  return ticks;
}

/** The least 1, 2 or 5 times a power of ten at or above ``v`` (> 0). */
export function niceAbove(v: number): number {
  const d = decade(Math.floor(Math.log10(v)));
  return ([1, 2, 5, 10].map((m) => Number((m * d).toPrecision(1))).find((t) => t >= v) ?? 10 * d);
}

/** A gradient-norm chart's value scale with the threshold ``floor``: from the decade of the least
 * norm (from 0 where one is 0) to the first 1, 2 or 5 of a decade at or above the greatest. */
function normScale(floor: number): uPlot.Scale {
  return {
    distr: 4,
    asinh: floor,
    range: (_u, min, max) => [min !== null && min > 0 ? floor : 0, max !== null && max > floor ? niceAbove(max) : 10 * floor],
  };
}

/** One chart of the comparison, redrawn with the runs' lines as they change. */
export class CompareChart {
  private plot: uPlot | null = null;
  private key = "";
  private lines: ChartLine[] = [];
  /** the steps every chart of the page spans (null: this chart's own) */
  steps: [number, number] | null = null;

  constructor(private container: HTMLElement, readonly name: string) {
    new ResizeObserver(() => {
      const width = this.container.clientWidth;
      if (this.plot && width > 0 && width !== this.plot.width) this.plot.setSize({ width, height: 200 });
    }).observe(container);
  }

  draw(lines: ChartLine[]): void {
    this.lines = lines;
    const data = alignLines(lines.map((l) => l.line), MOST_POINTS, countsFilters(this.name));
    // (a gradient norm's scale is made with the decade of its least norm: a new one makes it again)
    const floor = gradNormLayer(this.name) !== null ? normThreshold(lines.map((l) => l.line)) : 0;
    const key = lines.map((l) => `${l.run}\u0000${l.label}\u0000${l.style.stroke}`).join("\u0001") + `\u0001${floor}`;
    if (this.plot && key === this.key) {
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    this.container.textContent = "";
    this.key = key;
    const options = compareOptions(this.name, lines, this.container.clientWidth || 500, (u) => this.marks(u), () => this.steps);
    this.plot = new uPlot(options, data, this.container);
  }

  /** Each run's marked steps (its prunings), dashed in its colour; then its flagged checks' markers
   * on its line (one not a finite number at the top), over every line. */
  private marks(u: uPlot): void {
    const ctx = u.ctx;
    const top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
    ctx.save();
    ctx.lineWidth = devicePixelRatio;
    ctx.globalAlpha = 0.55;
    ctx.setLineDash([5, 5]);
    for (const l of this.lines) {
      ctx.strokeStyle = l.style.stroke;
      for (const s of l.marks) {
        const x = u.valToPos(s, "x", true);
        if (!Number.isFinite(x)) continue;
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, bottom);
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
    ctx.setLineDash([]);
    ctx.strokeStyle = FLAG_EDGE;
    ctx.lineWidth = 1.5 * devicePixelRatio;
    const r = 5.5 * devicePixelRatio;
    for (const l of this.lines) for (const { step, value, status } of l.flags ?? []) {
      const x = u.valToPos(step, "x", true);
      const y = Number.isFinite(value) ? u.valToPos(value, "y", true) : top;
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      ctx.fillStyle = flagColour(status);
      ctx.beginPath();
      for (const [px, py] of flagShape(status)) ctx.lineTo(x + r * px, y + r * py);
      ctx.closePath();
      ctx.stroke();
      ctx.fill();
    }
    ctx.restore();
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
  }
}
