// The prediction as a bar chart, and the per-layer divergence of two inputs as a bar chart with the
// threshold at which they part ways (its axis labelled, its colours in a legend, bars with tooltips).
import { emptyState, fitCanvas } from "../canvas";
import type { Comparison, Prediction } from "./client";
import { barKind, barTip, DIVERGENCE_AXIS, DIVERGENCE_COLORS, divergenceLegend, formatValue } from "./keys";

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

/**
 * Relative change ‖B − A‖ / ‖A‖ per layer (log scale, the y axis labelled), the threshold dashed,
 * the parting layer pink and the other layers at or above the threshold orange; ``tip`` (an element
 * over the canvas's box) shows a hovered bar's numbers, a click on a bar calls ``onPick``.
 */
export function drawDivergence(canvas: HTMLCanvasElement, c: Comparison | null, onPick?: (layer: string) => void, tip?: HTMLElement | null): void {
  const ctx = fitCanvas(canvas, 220);
  canvas.setAttribute("aria-label", `bar chart: ${DIVERGENCE_AXIS} per layer`);
  canvas.dataset.yLabel = DIVERGENCE_AXIS;
  if (tip) tip.hidden = true;
  if (!c) {
    canvas.onclick = canvas.onmousemove = canvas.onmouseleave = null;
    return emptyState(ctx, "choose two inputs and compare");
  }
  const w = canvas.clientWidth || 600, h = 220;
  const left = 58, right = 8, bottom = 56, top = 12;
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
  const bw = (w - left - right) / n;
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#9aa0a6";
  ctx.textAlign = "right";
  for (const tick of [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000]) {
    if (tick < lo || tick > hi) continue;
    ctx.fillText(String(tick), left - 4, y(tick) + 3);
    ctx.fillRect(left, y(tick), w - left - right, 0.5);
  }
  // the y axis's label, along it
  ctx.save();
  ctx.translate(11, top + (h - bottom - top) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillStyle = "#c9ccd1";
  ctx.fillText(DIVERGENCE_AXIS, 0, 0);
  ctx.restore();
  c.layers.forEach((l, i) => {
    const v = vals[i];
    const x = left + i * bw;
    ctx.fillStyle = DIVERGENCE_COLORS[barKind(l, c)];
    const yy = y(v);
    ctx.fillRect(x + 1, yy, Math.max(1, bw - 2), h - bottom - yy);
    if (!Number.isFinite(v)) {
      ctx.fillStyle = "#15181d";
      ctx.textAlign = "center";
      ctx.fillText("∞", x + bw / 2, yy + 10);
    }
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
  // the threshold: dashed across the bars, named at its right end
  const ty = y(c.threshold);
  ctx.strokeStyle = DIVERGENCE_COLORS.threshold;
  ctx.lineWidth = 1.5;
  ctx.setLineDash([5, 3]);
  ctx.beginPath();
  ctx.moveTo(left, ty);
  ctx.lineTo(w - right, ty);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.lineWidth = 1;
  const label = `threshold ${formatValue(c.threshold)}`;
  const lw = ctx.measureText(label).width + 8;
  const ly = ty - 14 >= 0 ? ty - 14 : ty + 2;
  ctx.fillStyle = "rgba(21, 24, 29, 0.85)";
  ctx.fillRect(w - right - lw, ly, lw, 12);
  ctx.fillStyle = DIVERGENCE_COLORS.threshold;
  ctx.textAlign = "right";
  ctx.fillText(label, w - right - 4, ly + 9);
  ctx.textAlign = "start";
  const barAt = (e: MouseEvent): number | null => {
    const r = canvas.getBoundingClientRect();
    const px = e.clientX - r.left, py = e.clientY - r.top;
    const i = Math.floor((px - left) / bw);
    return i >= 0 && i < c.layers.length && py >= top - 4 && py <= h - bottom + 40 ? i : null;
  };
  canvas.onclick = onPick
    ? (e) => {
        const i = barAt(e);
        if (i !== null) onPick(c.layers[i].layer);
      }
    : null;
  canvas.onmousemove = (e) => {
    const i = barAt(e);
    canvas.style.cursor = i !== null && onPick ? "pointer" : "";
    if (!tip) return;
    if (i === null) {
      tip.hidden = true;
      return;
    }
    tip.textContent = barTip(c.layers[i], c);
    tip.hidden = false;
    // beside the bar, inside the chart's box
    const box = canvas.parentElement?.clientWidth ?? w;
    const x = left + (i + 0.5) * bw;
    tip.style.top = `${Math.max(0, Math.min(y(vals[i]), h - bottom) - 8 - tip.offsetHeight)}px`;
    tip.style.left = `${Math.max(0, Math.min(box - tip.offsetWidth, x - tip.offsetWidth / 2))}px`;
  };
  canvas.onmouseleave = () => {
    if (tip) tip.hidden = true;
  };
}

/** The chart's key, as html rows: a swatch and what it means (what a bar is said in the caption). */
export function renderDivergenceLegend(el: HTMLElement, c: Comparison | null): void {
  el.innerHTML = "";
  if (!c) return;
  const caption = document.createElement("div");
  caption.className = "chart-caption";
  caption.textContent = `Each bar is one layer: how much its output changes from A to B, ‖B − A‖ / ‖A‖ (A the reference; log scale). Hover a bar for its numbers, click it to show its maps below.`;
  el.appendChild(caption);
  for (const e of divergenceLegend(c)) {
    const item = document.createElement("span");
    item.className = "legend-item";
    item.dataset.key = e.key;
    const sw = document.createElement("i");
    sw.className = `swatch ${e.swatch}`;
    if (e.swatch === "dash") sw.style.borderTopColor = e.color;
    else sw.style.background = e.color;
    item.append(sw, document.createTextNode(e.text));
    el.appendChild(item);
  }
}
