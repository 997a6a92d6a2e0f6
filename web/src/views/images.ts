// Image view: every feature map of one sample as a grid of small images. Maps are drawn
// once into an offscreen canvas at full resolution; the grid and the zoomed map are scaled
// copies of it, so panning and zooming never touch the pixels again.
import { sequential } from "../colors";
import type { Frame } from "../frames";
import { emptyState, fitCanvas } from "./canvas";

const LUT: Uint8ClampedArray = (() => {
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const [r, g, b] = sequential(i / 255);
    lut.set([r, g, b, 255], i * 4);
  }
  return lut;
})();

export class ImagesView {
  private atlas = document.createElement("canvas");
  private frame: Frame | undefined;
  private cols = 1;
  private mapW = 1;
  private mapH = 1;
  zoomed = -1;
  lastDrawMs = 0;

  constructor(private canvas: HTMLCanvasElement, private zoom: HTMLCanvasElement, private caption: HTMLElement) {
    canvas.addEventListener("click", (ev) => {
      if (!this.frame) return;
      const rect = canvas.getBoundingClientRect();
      const cell = rect.width / this.cols;
      const col = Math.floor((ev.clientX - rect.left) / cell);
      const row = Math.floor((ev.clientY - rect.top) / (cell * (this.mapH / this.mapW)));
      const idx = row * this.cols + col;
      this.zoomed = idx < this.frame.payload.images.shape[0] ? idx : -1;
      this.drawZoom();
    });
  }

  update(frame: Frame | undefined): void {
    this.frame = frame;
    const t0 = performance.now();
    if (!frame) {
      this.caption.textContent = "";
      this.drawZoom(); // (a canvas never sized stands 2:1 at full width: a blank half page)
      return emptyState(fitCanvas(this.canvas, 160), "no feature-map images yet");
    }
    const img = frame.payload.images;
    const [F, H, W] = img.shape;
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
    const scale = frame.payload.scale;
    this.caption.textContent =
      `${F} maps of ${H}x${W}` + (scale && scale !== 1 ? ` (downsampled x${Number(scale).toPrecision(3)})` : "") +
      `, sample ${frame.payload.sample}, ${frame.payload.normalisation} normalisation; click a map to zoom`;
    this.drawZoom();
    this.lastDrawMs = performance.now() - t0;
  }

  private drawZoom(): void {
    const ctx = fitCanvas(this.zoom, this.zoomed >= 0 ? 260 : 1);
    if (this.zoomed < 0 || !this.frame) return;
    const f = this.zoomed;
    const W = this.mapW, H = this.mapH;
    const size = Math.min(this.zoom.clientWidth, 260 * (W / H));
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.atlas, (f % this.cols) * W, Math.floor(f / this.cols) * H, W, H, 0, 0, size, size * (H / W));
    ctx.fillStyle = "#e8eaed";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(`filter ${f}`, size + 10, 16);
  }
}
