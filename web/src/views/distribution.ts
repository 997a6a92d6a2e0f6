// Distribution view: each filter's feature-map values (normalised to [0, 1] by its own min and
// max) as a histogram line, coloured by the filter's correlation group (grey: in no group). The
// line nearest the pointer is drawn on top and its filter's real range and moments said (the
// filter by its original number, before any pruning). The plot is as tall as the box it sits in
// (the grid row beside a taller correlation panel), never shorter than the box's CSS min-height
// (.plot-box in style.css: the one place that says how short it may be).
import { groupColor } from "../colors";
import type { Frame } from "../frames";
import { emptyState, fitCanvas } from "./canvas";
import { type FilterNames, filterName, numberingNote } from "./filterNumbers";

const PAD = 28; // left and bottom: room for the axis words
const TOP = 6;

/** The canvas's CSS height in a box ``room`` CSS pixels tall: all of it, but at least ``least``
 * (the box's min-height, which its room lacks where the box is not laid out: hidden, say). */
export function plotHeight(room: number, least: number): number {
  return Math.max(least || 0, Math.floor(room) || 0);
}

/** The plot's box on a canvas ``w`` CSS pixels wide and ``h`` tall. */
export function plotBox(w: number, h: number): { x: number; y: number; w: number; h: number } {
  return { x: PAD, y: TOP, w: Math.max(1, w - PAD - 6), h: Math.max(1, h - PAD - TOP) };
}

/** How high the layer's peak is drawn (1: the plot's top edge, where the frame would hide it). */
export const PEAK = 0.94;

/** Height (0 at the bottom, 1 at the top) of filter ``f``'s line at bin ``b``: counts on a
 * square-root scale, so that the low tails still show beside a peak, which is at ``PEAK``. */
export function lineHeight(counts: ArrayLike<number>, B: number, f: number, b: number, peak: number): number {
  return PEAK * Math.sqrt(counts[f * B + b] / (peak || 1));
}

/** The filter whose line passes nearest (vertically) to the point at ``fx`` (0..1 across the
 * plot) and height ``fy`` (0 bottom, 1 top), or -1 when none is within ``within`` of it. */
export function nearestLine(counts: ArrayLike<number>, F: number, B: number, fx: number, fy: number, within = 0.08): number {
  if (fx < 0 || fx > 1 || B === 0) return -1;
  let peak = 0;
  for (let i = 0; i < F * B; i++) peak = Math.max(peak, counts[i]);
  // the lines join the bins' centres: interpolate between the two around fx
  const pos = Math.min(Math.max(fx * B - 0.5, 0), B - 1);
  const b0 = Math.floor(pos), b1 = Math.min(b0 + 1, B - 1), t = pos - b0;
  let best = -1, bestD = within;
  for (let f = 0; f < F; f++) {
    const y = (1 - t) * lineHeight(counts, B, f, b0, peak) + t * lineHeight(counts, B, f, b1, peak);
    const d = Math.abs(y - fy);
    if (d < bestD) [best, bestD] = [f, d];
  }
  return best;
}

/** Three significant digits, in exponent form only for very large or small values. */
export const fmt = (v: number): string => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : String(Number(v.toPrecision(3))));

/** What the caption says of filter ``f`` (the frame's index; named by its original number where
 * ``names`` gives it): its group and its values' real range and moments. */
export function describeFilter(dist: Frame, f: number, labels: ArrayLike<number> | null, names: FilterNames | null = null): string {
  const p = dist.payload;
  const at = (k: string) => (p[k] && p[k].data.length > f ? Number(p[k].data[f]) : NaN);
  const group = labels && labels[f] >= 0 ? `, group ${labels[f]}` : "";
  return `filter ${filterName(names, f)}${group}: values ${fmt(at("min"))} to ${fmt(at("max"))}, mean ${fmt(at("mean"))}, std ${fmt(at("std"))}`;
}

/** Draws on ``canvas``, which lies alone in a box that the page sizes (absolutely placed in it:
 * the box's height must not come from the canvas, which takes all of it). */
export class DistributionView {
  private current: { dist: Frame; labels: ArrayLike<number> | null; names: FilterNames | null } | null = null;
  /** the filter whose line is under the pointer (-1: none) */
  hovered = -1;

  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly caption: HTMLElement,
  ) {
    canvas.addEventListener("mousemove", (e) => this.hover(e.offsetX, e.offsetY));
    canvas.addEventListener("mouseleave", () => this.setHovered(-1));
    // (the box grows and shrinks with its grid row: the plot is drawn again to fill it)
    if (canvas.parentElement) new ResizeObserver(() => this.redraw()).observe(canvas.parentElement);
  }

  /** The canvas's CSS height now: its box's, at least the box's min-height. */
  private get height(): number {
    const box = this.canvas.parentElement;
    return box ? plotHeight(box.clientHeight, parseFloat(getComputedStyle(box).minHeight)) : 0;
  }

  update(dist: Frame | undefined, groups: Frame | undefined, names: FilterNames | null = null): void {
    if (!dist) {
      this.current = null;
      this.caption.textContent = "";
      this.redraw();
      return;
    }
    const F = dist.payload.counts.shape[0];
    const labels = groups && groups.payload.labels.shape[0] === F ? (groups.payload.labels.data as ArrayLike<number>) : null;
    this.current = { dist, labels, names };
    if (this.hovered >= F) this.hovered = -1;
    this.draw();
  }

  private redraw(): void {
    if (this.current) this.draw();
    else emptyState(fitCanvas(this.canvas, this.height), "no distribution frames yet");
  }

  private draw(): void {
    const h = this.height;
    const ctx = fitCanvas(this.canvas, h);
    const { dist, labels, names } = this.current!;
    const counts = dist.payload.counts;
    const [F, B] = counts.shape;
    const w = this.canvas.clientWidth;
    const box = plotBox(w, h);
    ctx.clearRect(0, 0, w, h);
    let peak = 0;
    for (let i = 0; i < F * B; i++) peak = Math.max(peak, counts.data[i] as number);
    ctx.strokeStyle = "#3a3f47";
    ctx.strokeRect(box.x, box.y, box.w, box.h);
    ctx.fillStyle = "#8a8f98";
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText("0", PAD - 3, h - 10);
    ctx.fillText("1", w - 12, h - 10);
    ctx.fillText("each filter's min to max", w / 2 - 60, h - 8);
    ctx.save();
    ctx.translate(12, box.y + box.h / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText("count (√)", 0, 0);
    ctx.restore();
    // grouped filters drawn last, on top, and the one under the pointer above all
    const rank = (f: number) => (f === this.hovered ? 2 : labels && labels[f] >= 0 ? 1 : 0);
    const order = Array.from({ length: F }, (_, i) => i).sort((a, b) => rank(a) - rank(b));
    for (const f of order) {
      const g = labels ? labels[f] : -1;
      const hot = f === this.hovered;
      ctx.strokeStyle = hot ? "#ffffff" : groupColor(g);
      ctx.globalAlpha = hot || g >= 0 ? 0.95 : this.hovered >= 0 ? 0.25 : 0.45;
      ctx.lineWidth = hot ? 2.4 : g >= 0 ? 1.6 : 1;
      ctx.beginPath();
      for (let b = 0; b < B; b++) {
        const x = box.x + ((b + 0.5) / B) * box.w;
        const y = box.y + (1 - lineHeight(counts.data, B, f, b, peak)) * box.h;
        if (b === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      }
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
    const numbering = numberingNote(names);
    this.caption.textContent = this.hovered >= 0
      ? describeFilter(dist, this.hovered, labels, names)
      : `${F} filters, ${B} bins each; point at a line for its filter's values` + (numbering ? `; ${numbering}` : "");
  }

  private hover(x: number, y: number): void {
    if (!this.current) return;
    const box = plotBox(this.canvas.clientWidth, this.canvas.clientHeight);
    const [F, B] = this.current.dist.payload.counts.shape;
    this.setHovered(nearestLine(this.current.dist.payload.counts.data, F, B, (x - box.x) / box.w, 1 - (y - box.y) / box.h));
  }

  private setHovered(f: number): void {
    if (f === this.hovered) return;
    this.hovered = f;
    if (this.current) this.draw();
  }
}
