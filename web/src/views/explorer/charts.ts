// The prediction as a bar chart, and the per-layer divergence of two inputs as a bar chart with the
// threshold at which they part ways.
import { emptyState, fitCanvas } from "../canvas";
import type { Comparison, Prediction } from "./client";

export function drawPrediction(canvas: HTMLCanvasElement, p: Prediction | null, label: number | null = null): void {
  const rows = p ? p.top.slice(0, 10) : [];
  const ctx = fitCanvas(canvas, Math.max(60, rows.length * 22 + 8));
  if (!p) return emptyState(ctx, "select an input");
  const w = canvas.clientWidth || 300;
  const nameW = 90, barW = w - nameW - 60;
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  rows.forEach((r, i) => {
    const y = 4 + i * 22;
    ctx.fillStyle = "#c9ccd1";
    ctx.textAlign = "right";
    ctx.fillText(r.name.length > 12 ? r.name.slice(0, 11) + "…" : r.name, nameW - 6, y + 9);
    ctx.fillStyle = "#23262d";
    ctx.fillRect(nameW, y, barW, 18);
    ctx.fillStyle = i === 0 ? "#ff4fa3" : r.index === label ? "#3cb44b" : "#4c8bf5";
    ctx.fillRect(nameW, y, Math.max(1, barW * r.probability), 18);
    ctx.fillStyle = "#e8eaed";
    ctx.textAlign = "left";
    ctx.fillText(`${(r.probability * 100).toFixed(1)}%`, nameW + barW + 6, y + 9);
  });
  ctx.textAlign = "start";
}

/** Relative change |b - a| / |a| per layer (log scale), the threshold dashed, the parting layer marked. */
export function drawDivergence(canvas: HTMLCanvasElement, c: Comparison | null, onPick?: (layer: string) => void): void {
  const ctx = fitCanvas(canvas, 220);
  if (!c) return emptyState(ctx, "choose two inputs and compare");
  const w = canvas.clientWidth || 600, h = 220;
  const left = 44, bottom = 56, top = 10;
  const vals = c.layers.map((l) => (l.relative === null ? Infinity : l.relative));
  const finite = vals.filter((v) => Number.isFinite(v) && v > 0);
  const hi = Math.max(c.threshold * 2, ...finite, 1e-3);
  const lo = Math.min(1e-4, ...finite);
  const y = (v: number) => {
    if (!(v > 0)) return h - bottom;
    const t = (Math.log10(Math.min(v, hi)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo));
    return h - bottom - t * (h - bottom - top);
  };
  const n = Math.max(1, c.layers.length);
  const bw = (w - left - 8) / n;
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#9aa0a6";
  ctx.textAlign = "right";
  for (const tick of [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100]) {
    if (tick < lo || tick > hi) continue;
    ctx.fillText(String(tick), left - 4, y(tick) + 3);
    ctx.fillRect(left, y(tick), w - left - 8, 0.5);
  }
  c.layers.forEach((l, i) => {
    const v = vals[i];
    const x = left + i * bw;
    ctx.fillStyle = l.layer === c.diverges_at ? "#ff4fa3" : v >= c.threshold ? "#f5a623" : "#4c8bf5";
    const yy = y(v);
    ctx.fillRect(x + 1, yy, Math.max(1, bw - 2), h - bottom - yy);
    if (bw >= 9 || i % Math.ceil(9 / bw) === 0) {
      ctx.save();
      ctx.translate(x + bw / 2, h - bottom + 4);
      ctx.rotate(-Math.PI / 3);
      ctx.fillStyle = "#9aa0a6";
      ctx.textAlign = "right";
      ctx.fillText(l.layer.length > 14 ? "…" + l.layer.slice(-13) : l.layer, 0, 3);
      ctx.restore();
    }
  });
  ctx.strokeStyle = "#ff4fa3";
  ctx.setLineDash([4, 3]);
  ctx.beginPath();
  ctx.moveTo(left, y(c.threshold));
  ctx.lineTo(w - 8, y(c.threshold));
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.textAlign = "start";
  canvas.onclick = onPick
    ? (e) => {
        const r = canvas.getBoundingClientRect();
        const i = Math.floor((e.clientX - r.left - left) / bw);
        if (i >= 0 && i < c.layers.length) onPick(c.layers[i].layer);
      }
    : null;
}
