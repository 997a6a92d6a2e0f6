// Image view: every feature map of one sample as a grid of small images. Maps are drawn
// once into an offscreen canvas at full resolution; the grid and the zoomed map are scaled
// copies of it, so panning and zooming never touch the pixels again. A colour bar above the maps
// says which values the ends of the colour map stand for; the zoomed map has its own. Each map
// carries its filter's number, the original one (before any pruning).
import { sequential } from "../colors";
import type { Frame } from "../frames";
import { emptyState, fitCanvas } from "./canvas";
import { type ColourKey, colourKey, rampCss } from "./colourKey";
import { type FilterNames, filterName, numberingNote } from "./filterNumbers";

const LUT: Uint8ClampedArray = (() => {
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const [r, g, b] = sequential(i / 255);
    lut.set([r, g, b, 255], i * 4);
  }
  return lut;
})();

const fmt = (v: number): string =>
  !Number.isFinite(v) ? "?" : v !== 0 && (Math.abs(v) < 1e-2 || Math.abs(v) >= 1e4) ? v.toExponential(1) : String(Number(v.toPrecision(3)));

/** The CSS gradient of the maps' colour map, dark (low) to bright (high). */
export const RAMP_CSS = rampCss([0, 0.25, 0.5, 0.75, 1].map(sequential));

/** What the ends of the colour map stand for in the maps of ``frame``: with shared normalisation
 * one range for all the maps, with per-map normalisation each map's own minimum and maximum
 * (the words give the spread of those over the maps), or map ``filter``'s own range (the filter
 * named ``name``: its original number). */
export function imageScale(frame: Frame, filter = -1, name = filter): { lo: string; hi: string; what: string } {
  const p = frame.payload;
  const list = (v: any): number[] => (v && typeof v === "object" && "data" in v ? Array.from(v.data as ArrayLike<number>, Number) : typeof v === "number" ? [v] : []);
  const lo = list(p.vmin), hi = list(p.vmax);
  if (filter >= 0 && filter < lo.length && filter < hi.length)
    return { lo: fmt(lo[filter]), hi: fmt(hi[filter]), what: `filter ${name}'s activation` + (hi[filter] === lo[filter] ? " (constant: drawn dark)" : "") };
  if (!lo.length || !hi.length) return { lo: "low", hi: "high", what: "activation" };
  if (p.normalisation === "shared" || (Math.min(...lo) === Math.max(...lo) && Math.min(...hi) === Math.max(...hi)))
    return { lo: fmt(lo[0]), hi: fmt(hi[0]), what: "activation, one scale for every map" };
  const range = (v: number[]) => `${fmt(Math.min(...v))} to ${fmt(Math.max(...v))}`;
  return { lo: "min", hi: "max", what: `each map from its own min (${range(lo)}) to its own max (${range(hi)}); click a map for its values` };
}

/** The font size of the filter numbers on the maps of cells ``cell`` CSS pixels wide (0: too small for any). */
export function mapLabelSize(cell: number): number {
  return cell < 22 ? 0 : Math.min(11, Math.max(8, Math.round(cell / 7)));
}

export class ImagesView {
  private atlas = document.createElement("canvas");
  private frame: Frame | undefined;
  /** the original numbers of the shown maps' filters (null: the layer was not pruned by then) */
  names: FilterNames | null = null;
  /** the zoomed map's filter, by its original number (-1: none): it stays zoomed across a pruning */
  private zoomedFilter = -1;
  private cols = 1;
  private mapW = 1;
  private mapH = 1;
  zoomed = -1;
  lastDrawMs = 0;

  /** the colour bar above the maps (hidden until a frame is drawn) */
  private key: ColourKey & { box: HTMLElement };

  constructor(private canvas: HTMLCanvasElement, private zoom: HTMLCanvasElement, private caption: HTMLElement) {
    const box = document.createElement("div");
    box.className = "images-key";
    box.hidden = true;
    this.key = { ...colourKey(RAMP_CSS), box };
    box.append(this.key.el);
    caption.insertAdjacentElement("afterend", this.key.box);
    canvas.addEventListener("click", (ev) => {
      if (!this.frame) return;
      const rect = canvas.getBoundingClientRect();
      const cell = rect.width / this.cols;
      const col = Math.floor((ev.clientX - rect.left) / cell);
      const row = Math.floor((ev.clientY - rect.top) / (cell * (this.mapH / this.mapW)));
      const idx = row * this.cols + col;
      this.zoomed = idx < this.frame.payload.images.shape[0] ? idx : -1;
      this.zoomedFilter = this.zoomed >= 0 ? filterName(this.names, this.zoomed) : -1;
      this.drawZoom();
    });
  }

  /** The frame's index of the map of filter ``filter`` (an original number), or -1. */
  private indexOf(filter: number, count: number): number {
    if (filter < 0) return -1;
    if (!this.names) return filter < count ? filter : -1;
    return this.names.numbers.indexOf(filter);
  }

  update(frame: Frame | undefined, names: FilterNames | null = null): void {
    this.frame = frame;
    this.names = names;
    const t0 = performance.now();
    if (!frame) {
      this.caption.textContent = "";
      this.key.box.hidden = true;
      this.drawZoom(); // (a canvas never sized stands 2:1 at full width: a blank half page)
      return emptyState(fitCanvas(this.canvas, 160), "no feature-map images yet");
    }
    const img = frame.payload.images;
    const [F, H, W] = img.shape;
    this.zoomed = this.indexOf(this.zoomedFilter, F);
    this.mapW = W;
    this.mapH = H;
    // cells of at most 96 px (or the map's own size when larger maps are few)
    const width0 = this.canvas.clientWidth || 800;
    this.cols = Math.max(Math.ceil(Math.sqrt(F * 1.6)), Math.ceil(width0 / Math.max(96, Math.min(W, 224))));
    this.cols = Math.min(this.cols, F);
    const rows = Math.ceil(F / this.cols);
    this.atlas.width = this.cols * W;
    this.atlas.height = rows * H;
    const actx = this.atlas.getContext("2d")!;
    const data = new ImageData(W, H);
    for (let f = 0; f < F; f++) {
      const base = f * H * W;
      for (let p = 0; p < H * W; p++) {
        const v = img.data[base + p] as number;
        data.data[p * 4] = LUT[v * 4];
        data.data[p * 4 + 1] = LUT[v * 4 + 1];
        data.data[p * 4 + 2] = LUT[v * 4 + 2];
        data.data[p * 4 + 3] = 255;
      }
      actx.putImageData(data, (f % this.cols) * W, Math.floor(f / this.cols) * H);
    }
    const width = this.canvas.clientWidth;
    const cell = width / this.cols;
    const height = Math.ceil(rows * cell * (H / W));
    const c2 = fitCanvas(this.canvas, height);
    c2.imageSmoothingEnabled = false;
    c2.drawImage(this.atlas, 0, 0, width, height);
    c2.strokeStyle = "rgba(21,24,29,0.9)";
    for (let c = 1; c < this.cols; c++) c2.strokeRect(c * cell, 0, 0.5, height);
    for (let r = 1; r < rows; r++) c2.strokeRect(0, r * cell * (H / W), width, 0.5);
    this.drawNumbers(c2, F, cell, cell * (H / W));
    const down = frame.payload.scale;
    this.caption.textContent =
      `${F} maps of ${H}x${W}` + (down && down !== 1 ? ` (downsampled x${Number(down).toPrecision(3)})` : "") +
      `, sample ${frame.payload.sample}, ${frame.payload.normalisation} normalisation; click a map to zoom` +
      (names ? `; ${numberingNote(names)}` : "");
    const scale = imageScale(frame);
    this.key.box.hidden = false;
    this.key.lo.textContent = scale.lo;
    this.key.hi.textContent = scale.hi;
    this.key.what.textContent = scale.what;
    this.drawZoom();
    this.lastDrawMs = performance.now() - t0;
  }

  /** Each map's filter number in a small dark box at its top left (none where cells are too small). */
  private drawNumbers(ctx: CanvasRenderingContext2D, F: number, cellW: number, cellH: number): void {
    const size = mapLabelSize(Math.min(cellW, cellH * 1.5));
    if (!size) return;
    ctx.font = `${size}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (let f = 0; f < F; f++) {
      const text = String(filterName(this.names, f));
      const x = (f % this.cols) * cellW, y = Math.floor(f / this.cols) * cellH;
      const w = ctx.measureText(text).width + 6;
      ctx.fillStyle = "rgba(15, 17, 21, 0.72)";
      ctx.fillRect(x + 1, y + 1, w, size + 4);
      ctx.fillStyle = "#e8eaed";
      ctx.fillText(text, x + 4, y + 3);
    }
    ctx.textBaseline = "alphabetic";
  }

  private drawZoom(): void {
    const ctx = fitCanvas(this.zoom, this.zoomed >= 0 ? 260 : 1);
    if (this.zoomed < 0 || !this.frame) return;
    const f = this.zoomed;
    const name = filterName(this.names, f);
    const W = this.mapW, H = this.mapH;
    const size = Math.min(this.zoom.clientWidth, 260 * (W / H));
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.atlas, (f % this.cols) * W, Math.floor(f / this.cols) * H, W, H, 0, 0, size, size * (H / W));
    ctx.fillStyle = "#e8eaed";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(`filter ${name}`, size + 10, 16);
    // its own colour bar: the values its darkest and brightest pixels stand for
    const { lo, hi, what } = imageScale(this.frame, f, name);
    const bx = size + 10, top = 30, h = Math.min(180, size * (H / W) - 40);
    if (h < 40) return;
    for (let s = 0; s < 64; s++) {
      const [r, g, b] = sequential(1 - (s + 0.5) / 64);
      ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
      ctx.fillRect(bx, top + (s * h) / 64, 12, h / 64 + 0.5);
    }
    ctx.strokeStyle = "#3a3f47";
    ctx.strokeRect(bx, top, 12, h);
    ctx.fillStyle = "#9aa0a6";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.fillText(hi, bx + 16, top + 5);
    ctx.fillText(lo, bx + 16, top + h - 5);
    ctx.fillText(what.replace(`filter ${name}'s `, ""), bx, top + h + 14);
    ctx.textBaseline = "alphabetic";
  }
}
