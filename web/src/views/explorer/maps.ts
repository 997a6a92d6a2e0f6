// Drawing feature maps: a grid of every map of a layer (grey, or blue-white-red for differences),
// frozen maps greyed out, values on hover; small canvases of one map for thumbnails and textures;
// and the colour bar that says what values the grey (or blue-white-red) stands for.
import { diverging } from "../../colors";
import type { Maps } from "./client";
import { colorScale, formatValue } from "./keys";
import { cellAt, decodeBase64, gridLayout, stripLayout, unitAt, valueAt, type Grid } from "./logic";

export type Palette = "grey" | "diverging";

/** A canvas of map f at its own resolution (one pixel per map pixel). */
export function mapCanvas(maps: Maps, pixels: Uint8Array, f: number, palette: Palette = "grey", frozen: boolean | Set<number> = false): HTMLCanvasElement {
  const c = document.createElement("canvas");
  c.width = maps.width;
  c.height = maps.height;
  const ctx = c.getContext("2d")!;
  const img = ctx.createImageData(maps.width, maps.height);
  const n = maps.width * maps.height;
  const base = f * n;
  for (let i = 0; i < n; i++) {
    const v = pixels[base + i];
    let r = v, g = v, b = v;
    if (palette === "diverging") {
      const [dr, dg, db] = diverging(v / 127.5 - 1);
      r = dr * 255;
      g = dg * 255;
      b = db * 255;
    }
    if (maps.units != null && i >= maps.units) r = g = b = 24; // padding after the last unit
    else if (frozen === true || (frozen instanceof Set && frozen.has(i))) r = g = b = 70 + v * 0.1;
    img.data[i * 4] = r;
    img.data[i * 4 + 1] = g;
    img.data[i * 4 + 2] = b;
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

/** A row of a layer's first maps, all of one height with their own aspect (the layer table's
 *  thumbnails: every row as tall, no map squashed); frozen maps grey. */
export function drawStrip(canvas: HTMLCanvasElement, maps: Maps, frozen: number[] = [], height = 18, maxWidth = 176): void {
  const pixels = decodeBase64(maps.data);
  const strip = stripLayout(maps.count, maps.width, maps.height, height, maxWidth);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(strip.width * dpr));
  canvas.height = Math.round(height * dpr);
  canvas.style.width = `${strip.width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d")!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, strip.width, height);
  // (smoothed where maps shrink, so that a thumbnail is not a few sampled pixels; sharp where they grow)
  ctx.imageSmoothingEnabled = strip.cellHeight * dpr < maps.height;
  const set = new Set(frozen);
  const y = (height - strip.cellHeight) / 2;
  for (let f = 0; f < strip.count; f++) {
    const grey = maps.units == null ? set.has(f) : set;
    ctx.drawImage(mapCanvas(maps, pixels, f, "grey", grey), f * (strip.cellWidth + strip.pad), y, strip.cellWidth, strip.cellHeight);
  }
}

/** Every map of a layer on one canvas, laid out to fit its width; returns the grid for hit tests. */
export class MapGrid {
  grid: Grid | null = null;
  maps: Maps | null = null;
  pixels: Uint8Array | null = null;
  frozen = new Set<number>();
  palette: Palette = "grey";
  onHover: ((text: string) => void) | null = null;
  onClick: ((f: number) => void) | null = null;
  /** the colour bar of these maps: the span of them all, a hovered map's own range */
  bar: ColorBar | null = null;

  constructor(readonly canvas: HTMLCanvasElement, private opts: { maxCell?: number; minSide?: number } = {}) {
    canvas.addEventListener("mousemove", (e) => this.hover(e));
    canvas.addEventListener("mouseleave", () => {
      this.onHover?.("");
      if (this.maps) this.bar?.show(this.maps, this.palette);
    });
    canvas.addEventListener("click", (e) => {
      const hit = this.hit(e);
      if (!hit || !this.maps) return;
      const u = unitAt(this.maps, hit);
      if (this.maps.units == null) this.onClick?.(hit.f);
      else if (u !== null) this.onClick?.(u);
    });
  }

  draw(maps: Maps, frozen: number[] = [], palette: Palette = "grey"): void {
    this.maps = maps;
    this.pixels = decodeBase64(maps.data);
    this.frozen = new Set(frozen);
    this.palette = palette;
    this.bar?.show(maps, palette);
    const width = this.canvas.clientWidth || this.canvas.parentElement?.clientWidth || 600;
    const grid = gridLayout(maps.count, maps.width, maps.height, width, this.opts);
    this.grid = grid;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(grid.height * dpr);
    this.canvas.style.height = `${grid.height}px`;
    const ctx = this.canvas.getContext("2d")!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, grid.height);
    ctx.imageSmoothingEnabled = false;
    const cw = maps.width * grid.cell, ch = maps.height * grid.cell;
    for (let f = 0; f < maps.count; f++) {
      const x = (f % grid.columns) * (cw + grid.pad), y = Math.floor(f / grid.columns) * (ch + grid.pad);
      const isFrozen = maps.units == null && this.frozen.has(f);
      ctx.drawImage(mapCanvas(maps, this.pixels, f, palette, maps.units == null ? isFrozen : this.frozen), x, y, cw, ch);
      if (isFrozen) {
        ctx.strokeStyle = "#ff4fa3";
        ctx.lineWidth = 1.5;
        ctx.strokeRect(x + 0.75, y + 0.75, cw - 1.5, ch - 1.5);
        ctx.beginPath();
        ctx.moveTo(x, y);
        ctx.lineTo(x + cw, y + ch);
        ctx.stroke();
      }
    }
  }

  /** Draw nothing (no layer to show): nothing to hover or click either. */
  clear(): void {
    this.maps = null;
    this.pixels = null;
    this.grid = null;
    this.canvas.width = 0;
    this.canvas.height = 0;
    this.canvas.style.height = "0px";
    this.bar?.show(null);
  }

  private hit(e: MouseEvent): { f: number; x: number; y: number } | null {
    if (!this.grid || !this.maps) return null;
    const r = this.canvas.getBoundingClientRect();
    return cellAt(this.grid, this.maps.count, this.maps.width, this.maps.height, e.clientX - r.left, e.clientY - r.top);
  }

  private hover(e: MouseEvent): void {
    const hit = this.hit(e);
    if (this.maps) this.bar?.show(this.maps, this.palette, hit && this.maps.count > 1 ? hit.f : null);
    if (!hit || !this.maps || !this.pixels) return this.onHover?.("");
    const v = valueAt(this.maps, this.pixels, hit.f, hit.x, hit.y);
    if (this.maps.units != null) {
      const u = unitAt(this.maps, hit);
      if (u === null) return this.onHover?.("");
      return this.onHover?.(`unit ${u}${this.frozen.has(u) ? " (frozen)" : ""}: ${v.toPrecision(4)}`);
    }
    const frozen = this.frozen.has(hit.f) ? " (frozen)" : "";
    this.onHover?.(`map ${hit.f}${frozen} at (${hit.x}, ${hit.y}): ${v.toPrecision(4)}`);
  }
}

/**
 * A small colour bar: the ramp the maps are drawn in between the values its ends stand for; for
 * differences (B − A) blue-white-red centred on 0 with its ± range. Where each map has a range of its
 * own, the bar spans them all until a map is hovered (then that map's); its note (whole in its title
 * where ``compact``) says so.
 */
export class ColorBar {
  readonly el: HTMLElement;
  private lo: HTMLElement;
  private hi: HTMLElement;
  private zero: HTMLElement;
  private ramp: HTMLCanvasElement;
  private note: HTMLElement;
  private palette: Palette | null = null;

  constructor(private compact = false) {
    this.el = document.createElement("span");
    this.el.className = `colorbar${compact ? " compact" : ""}`;
    this.el.hidden = true;
    this.el.innerHTML = `<span class="cb-lo"></span><span class="cb-ramp"><canvas width="64" height="1"></canvas><span class="cb-zero">0</span></span><span class="cb-hi"></span><span class="cb-note"></span>`;
    this.lo = this.el.querySelector(".cb-lo")!;
    this.hi = this.el.querySelector(".cb-hi")!;
    this.zero = this.el.querySelector(".cb-zero")!;
    this.ramp = this.el.querySelector("canvas")!;
    this.note = this.el.querySelector(".cb-note")!;
  }

  show(maps: Maps | null, palette: Palette = "grey", f: number | null = null): void {
    const scale = maps ? colorScale(maps, palette, f) : null;
    this.el.hidden = !scale;
    if (!scale) return;
    if (palette !== this.palette) this.paint(palette);
    const signed = scale.mid !== null;
    this.lo.textContent = formatValue(scale.lo, signed);
    this.hi.textContent = formatValue(scale.hi, signed);
    this.zero.hidden = !signed;
    this.note.textContent = this.compact ? (scale.map !== null ? `map ${scale.map}` : scale.perMap ? "per map" : "") : scale.note;
    this.el.title = scale.note;
    this.el.dataset.lo = String(scale.lo);
    this.el.dataset.hi = String(scale.hi);
    this.el.dataset.palette = palette;
  }

  private paint(palette: Palette): void {
    this.palette = palette;
    const ctx = this.ramp.getContext("2d");
    if (!ctx) return;
    const img = ctx.createImageData(64, 1);
    for (let i = 0; i < 64; i++) {
      const t = i / 63;
      const [r, g, b] = palette === "diverging" ? diverging(t * 2 - 1).map((c) => c * 255) : [t * 255, t * 255, t * 255];
      img.data.set([r, g, b, 255], i * 4);
    }
    ctx.putImageData(img, 0, 0);
  }
}
