// Runs side by side (the #/compare page): one chart per scalar any of them logged, and per layer a
// pruning took filters from, its filter count; one line per run, each run in its own colour on
// every chart. Drawn with uPlot as the dashboard's scalars are, with the same axes.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { evenly } from "./evenly";
import { axisSize, axisValues, MOST_POINTS, SCALAR_COLORS, STEP_INCREMENTS, type ScalarLine } from "./scalars";

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

/** The name of the chart of ``layer``'s filter count (as the TensorBoard export names it). */
export const filtersName = (layer: string): string => layer + FILTERS;

/** The layer whose filter count the chart ``name`` is, or null for a logged scalar. */
export const filtersLayer = (name: string): string | null => (name.endsWith(FILTERS) && name.length > FILTERS.length ? name.slice(0, -FILTERS.length) : null);

/** Where a chart comes on the page: losses first, then the other values logged, learning rates,
 * and last the filter counts. */
function rank(name: string): number {
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
}

/** The uPlot options of a comparison chart of ``name`` with ``lines``: the steps along x (whole
 * steps; over ``steps()``, the page's range, where it gives one, so that every chart lines up), one
 * value axis; a filter count as a step line, its axis from 0. The cursor is synced across the
 * page's charts: pointing at a step on one reads every chart's values there. */
export function compareOptions(name: string, lines: ChartLine[], width: number, draw: (u: uPlot) => void = () => {},
  steps: () => [number, number] | null = () => null): uPlot.Options {
  const counts = filtersLayer(name) !== null;
  const stepped = counts ? uPlot.paths.stepped?.({ align: 1 }) : undefined;
  return {
    width,
    height: 200,
    scales: {
      x: { time: false, range: (_u, min, max) => steps() ?? (min === max ? [min - 1, max + 1] : [min, max]) },
      y: counts ? { range: (_u, _min, max) => [0, Math.max(1, Math.ceil((max ?? 1) * 1.1))] } : {},
    },
    axes: [
      { stroke: "#9aa0a6", grid: { stroke: "#2a2e35" }, label: "step", labelFont: "12px system-ui, sans-serif", labelSize: 18, labelGap: 0,
        size: 30, incrs: STEP_INCREMENTS },
      { stroke: "#9aa0a6", grid: { stroke: "#2a2e35" }, scale: "y", values: axisValues, size: axisSize, ...(counts ? { incrs: STEP_INCREMENTS } : {}) },
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
      })),
    ],
    cursor: { sync: { key: "convscope-compare" } },
    hooks: { draw: [draw] },
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
    const data = alignLines(lines.map((l) => l.line), MOST_POINTS, filtersLayer(this.name) !== null);
    const key = lines.map((l) => `${l.run}\u0000${l.label}\u0000${l.style.stroke}`).join("\u0001");
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

  /** Each run's marked steps (its prunings), dashed in its colour. */
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
    ctx.restore();
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
  }
}
