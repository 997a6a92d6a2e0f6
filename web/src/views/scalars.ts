// Scalars (loss, accuracy, learning rate ...) over the steps with uPlot, pruning events and the
// steps where a resumed training went on as dashed vertical lines, the current step as a solid one.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { CURRENT_STEP } from "../colors";
import type { Frame } from "../frames";
import { evenly } from "./evenly";

/** At most this many points of a line are drawn (evenly spread: see ``evenly``). */
export const MOST_POINTS = 4000;
/** The lines' colours, in turn (made to read on the page's dark panels). */
export const SCALAR_COLORS = ["#ff6b6b", "#4dabf7", "#69db7c", "#ffd43b", "#da77f2", "#ffa94d", "#63e6be"];

/** One scalar's values by step. */
export type ScalarLine = Map<number, number>;

/** Put the values of the ``scalar`` and ``scalars`` frames among ``frames`` into ``series`` (by
 * name, then step; a later value at a step replaces an earlier one); other frames are passed over. */
export function addScalars(series: Map<string, ScalarLine>, frames: Frame[]): Map<string, ScalarLine> {
  const line = (name: string): ScalarLine => {
    let l = series.get(name);
    if (!l) series.set(name, (l = new Map()));
    return l;
  };
  for (const f of frames) {
    if (f.kind === "scalar") line(String(f.payload.name)).set(f.step, Number(f.payload.value));
    if (f.kind === "scalars") {
      // one name's values over several steps: the monitor sends what log() got once a second
      const l = line(String(f.payload.name));
      const steps = f.payload.steps.data;
      const values = f.payload.values.data;
      for (let i = 0; i < steps.length; i++) l.set(Number(steps[i]), Number(values[i]));
    }
  }
  return series;
}

export class ScalarsView {
  private plot: uPlot | null = null;
  private dirty = true; // values came since the last draw
  private series = new Map<string, Map<number, number>>();
  private prunings: number[] = [];
  /** Steps where training went on after its process ended (``watch(resume=True)``). */
  readonly resumes: number[] = [];
  current = 0;

  constructor(private container: HTMLElement) {
    new ResizeObserver(() => this.plot?.setSize({ width: this.container.clientWidth, height: 220 })).observe(container);
  }

  add(frames: Frame[]): void {
    this.dirty = true;
    for (const f of frames) {
      if (f.kind === "pruning") this.prunings.push(f.step);
      if (f.kind === "run_meta" && f.payload.event === "resume" && !this.resumes.includes(f.step)) this.resumes.push(f.step);
    }
    addScalars(this.series, frames);
  }

  /** The steps that have a value of ``name``, ascending. */
  steps(name: string): number[] {
    return [...(this.series.get(name)?.keys() ?? [])].sort((a, b) => a - b);
  }

  draw(): void {
    if (this.plot && !this.dirty) {
      this.plot.redraw(false); // only the current step's line moved
      return;
    }
    this.dirty = false;
    const names = [...this.series.keys()].sort();
    // a long run logs a value every step: each line is drawn from at most MOST_POINTS of them,
    // evenly spread (its last one always), so a redraw stays quick however long the run
    const shown = (n: string): number[] => evenly([...this.series.get(n)!.keys()].sort((a, b) => a - b), MOST_POINTS);
    const steps = [...new Set(names.flatMap(shown))].sort((a, b) => a - b);
    if (steps.length === 0) {
      this.container.textContent = "no scalars yet: call monitor.log(loss=...) in the training loop";
      return;
    }
    const data: uPlot.AlignedData = [
      steps,
      ...names.map((n) => steps.map((s) => this.series.get(n)!.get(s) ?? null)),
    ];
    const key = names.join(",");
    if (!this.plot || this.plot.series.length !== names.length + 1 || (this.plot as any)._key !== key) {
      this.plot?.destroy();
      this.container.textContent = "";
      const opts = scalarOptions(names, this.container.clientWidth || 500, (u) => this.marks(u));
      this.plot = new uPlot(opts, data, this.container);
      (this.plot as any)._key = key;
    } else {
      this.plot.setData(data);
    }
  }

  private marks(u: uPlot): void {
    const ctx = u.ctx;
    const top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
    ctx.save();
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.setLineDash([6, 4]);
    const dashed = (steps: number[], colour: string): void => {
      ctx.strokeStyle = colour;
      for (const s of steps) {
        const x = u.valToPos(s, "x", true);
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, bottom);
        ctx.stroke();
      }
    };
    dashed(this.prunings, "#f783ac");
    dashed(this.resumes, "#adb5bd");
    ctx.setLineDash([]);
    ctx.restore();
    markStep(u, this.current);
  }

  redrawMarks(): void {
    this.plot?.redraw(false);
  }
}

/** Whether a scalar is drawn on the left axis (losses and the like) rather than the right one
 * (accuracies and learning rates: values of another size). */
export const onLeft = (name: string): boolean => !/acc|lr|learning/i.test(name);

/** An axis' title: the names of the scalars drawn against it (cut short to fit beside it). */
export function axisTitle(names: string[], most = 30): string {
  const text = names.join(", ");
  return text.length > most ? text.slice(0, most - 1) + "…" : text;
}

/** The step axis' tick spacings: whole steps only (uPlot's own include 2.5, ticks at steps that do not exist). */
export const STEP_INCREMENTS: number[] = Array.from({ length: 10 }, (_, k) => [1, 2, 5].map((m) => m * 10 ** k)).flat();

/** The chart's uPlot options for the scalars ``names``: the steps along x (the hover legend reads
 * "step: 300"), losses and the like on the left axis, accuracies and learning rates on the right,
 * each axis titled with the names drawn against it (an axis with none is not shown). */
export function scalarOptions(names: string[], width: number, draw: (u: uPlot) => void = () => {}): uPlot.Options {
  const left = names.filter(onLeft), right = names.filter((n) => !onLeft(n));
  const font = "12px system-ui, sans-serif";
  return {
    width,
    height: 220,
    scales: { x: { time: false }, y: {}, r: {} },
    axes: [
      { stroke: "#9aa0a6", grid: { stroke: "#2a2e35" }, label: "step", labelFont: font, incrs: STEP_INCREMENTS },
      { stroke: "#9aa0a6", grid: { stroke: "#2a2e35" }, scale: "y", values: axisValues, size: axisSize, show: left.length > 0,
        label: axisTitle(left), labelFont: font, labelSize: 20 },
      { stroke: "#9aa0a6", side: 1, grid: { show: left.length === 0 }, scale: "r", values: axisValues, size: axisSize, show: right.length > 0,
        label: axisTitle(right), labelFont: font, labelSize: 20 },
    ],
    series: [
      { label: "step" },
      ...names.map((n, i) => ({ label: n, stroke: SCALAR_COLORS[i % SCALAR_COLORS.length], width: 1.5, scale: onLeft(n) ? "y" : "r", spanGaps: true })),
    ],
    hooks: { draw: [draw] },
  };
}

/** A value axis' tick label: short whatever the scale (a loss that exploded to 30000 reads "3e+4",
 * not a "30,000" the axis cuts to "0,000"). */
export function axisLabel(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(1).replace(".0e", "e").replace("e+", "e") : String(+v.toPrecision(3));
}

/** A value axis' tick labels (uPlot's ``values``). */
export const axisValues = (_u: uPlot, splits: number[]): string[] => splits.map(axisLabel);

/** The axis' width in CSS pixels: room for its longest label. */
export function axisSize(_u: uPlot, values: string[] | null): number {
  return Math.max(36, Math.max(0, ...(values ?? []).map((v) => v.length)) * 7 + 16);
}

/** The current ``step`` on uPlot chart ``u``: a solid line across its plot (none off the plot). */
export function markStep(u: uPlot, step: number): void {
  const x = u.valToPos(step, "x", true);
  if (!Number.isFinite(x) || x < u.bbox.left - 1 || x > u.bbox.left + u.bbox.width + 1) return;
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = CURRENT_STEP;
  ctx.lineWidth = 2 * devicePixelRatio;
  ctx.beginPath();
  ctx.moveTo(x, u.bbox.top);
  ctx.lineTo(x, u.bbox.top + u.bbox.height);
  ctx.stroke();
  ctx.restore();
}
