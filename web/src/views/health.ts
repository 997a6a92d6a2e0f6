// Gradient health over time: one row per layer, each recorded step a cell coloured by status
// (healthy, vanishing, exploding, stalled, non-finite), with the gradient norm (log scale)
// drawn across the row. The current step is marked; a step axis runs under the rows, and a key
// under it says the colours and the line.
import { CURRENT_STEP, STATUS_COLORS } from "../colors";
import type { Frame } from "../frames";
import { emptyState, fitCanvas } from "./canvas";

const ROW_H = 26;
const LABEL_W = 110;
const NORM_KEY = "gradient norm (log scale, each row its own range)";

/** The step at CSS x ``px`` of a health strip ``w`` wide showing steps ``first`` to ``lastStep``
 * (clamped to them): where a click on the strip moves the dashboard. */
export function healthStepAt(px: number, w: number, first: number, lastStep: number): number {
  const t = (px - LABEL_W) / Math.max(1, w - LABEL_W - 8);
  return Math.round(first + Math.min(1, Math.max(0, t)) * Math.max(1, lastStep - first));
}

/** The steps to mark on the axis under a strip ``width`` CSS pixels wide (the rows' part of it)
 * showing steps ``first`` to ``last``: both ends, and round steps between them no closer than
 * ``gap`` pixels to each other or to the ends. */
export function stepTicks(first: number, last: number, width: number, gap = 70): number[] {
  if (last <= first) return [first];
  const span = last - first;
  const raw = (span * gap) / Math.max(1, width);
  const pow = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  const every = [1, 2, 5, 10].map((m) => m * pow).find((v) => v >= raw) ?? 10 * pow;
  const near = (span * gap * 0.6) / Math.max(1, width); // (no round step crowding an end's label)
  const ticks = [first];
  for (let t = Math.ceil(first / every) * every; t < last; t += every) if (t - first >= near && last - t >= near) ticks.push(t);
  ticks.push(last);
  return ticks;
}

export function drawHealth(canvas: HTMLCanvasElement, frames: Frame[], layers: string[], current: number, lastStep: number): void {
  const rowH = ROW_H, labelW = LABEL_W;
  const axisY = layers.length * rowH + 2; // the step axis under the rows
  let ctx = fitCanvas(canvas, Math.max(60, axisY + 44));
  if (frames.length === 0) return emptyState(ctx, "no gradient-health frames yet");
  const w = canvas.clientWidth;
  // the key's second part (the line) goes on a line of its own where the strip is narrow
  ctx.font = "11px system-ui, sans-serif";
  const statuses = Object.keys(STATUS_COLORS).filter((n) => n !== "non-finite");
  const keyWidth = statuses.reduce((a, n) => a + ctx.measureText(n).width + 30, 0);
  const wrap = labelW + keyWidth + 22 + ctx.measureText(NORM_KEY).width > w - 4;
  if (wrap) ctx = fitCanvas(canvas, axisY + 62);
  const first = Math.min(...frames.map((f) => f.step));
  canvas.dataset.first = String(first); // (for a click: see healthStepAt)
  const span = Math.max(1, lastStep - first);
  const x = (step: number) => labelW + ((step - first) / span) * (w - labelW - 8);
  ctx.font = "11px system-ui, sans-serif";
  layers.forEach((layer, row) => {
    const y0 = row * rowH + 4;
    const own = frames.filter((f) => f.layer === layer).sort((a, b) => a.step - b.step);
    ctx.fillStyle = "#c9ccd1";
    ctx.fillText(layer.length > 16 ? "…" + layer.slice(-15) : layer, 4, y0 + 15);
    own.forEach((f, i) => {
      const next = own[i + 1]?.step ?? f.step + (own.length > 1 ? own[1].step - own[0].step : 1);
      ctx.fillStyle = STATUS_COLORS[f.payload.status] ?? "#555";
      ctx.fillRect(x(f.step), y0, Math.max(1, x(next) - x(f.step) - 0.5), rowH - 8);
    });
    const norms = own.map((f) => Math.log10(Math.max(1e-12, Number(f.payload.grad_norm))));
    if (norms.length > 1) {
      const lo = Math.min(...norms), hi = Math.max(...norms);
      ctx.strokeStyle = "rgba(255,255,255,0.85)";
      ctx.lineWidth = 1.2;
      ctx.beginPath();
      own.forEach((f, i) => {
        const yy = y0 + (rowH - 10) * (hi > lo ? 1 - (norms[i] - lo) / (hi - lo) : 0.5) + 1;
        if (i === 0) ctx.moveTo(x(f.step), yy);
        else ctx.lineTo(x(f.step), yy);
      });
      ctx.stroke();
    }
  });
  ctx.strokeStyle = CURRENT_STEP;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ctx.moveTo(x(current), 0);
  ctx.lineTo(x(current), axisY);
  ctx.stroke();
  // the step axis: the first and last steps shown, round ones between
  ctx.strokeStyle = "#3a3f47";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(labelW, axisY + 0.5);
  ctx.lineTo(w - 8, axisY + 0.5);
  ctx.stroke();
  ctx.fillStyle = "#9aa0a6";
  ctx.textBaseline = "top";
  ctx.fillText("step", 4, axisY + 4);
  const ticks = stepTicks(first, lastStep, w - labelW - 8);
  ticks.forEach((t, i) => {
    ctx.fillRect(x(t) - 0.5, axisY, 1, 4);
    ctx.textAlign = i === 0 ? "left" : i === ticks.length - 1 ? "right" : "center";
    ctx.fillText(String(t), x(t), axisY + 5);
  });
  ctx.textAlign = "left";
  ctx.textBaseline = "alphabetic";
  let lx = labelW;
  const legendY = axisY + 36;
  for (const name of statuses) {
    ctx.fillStyle = STATUS_COLORS[name];
    ctx.fillRect(lx, legendY - 9, 10, 10);
    ctx.fillStyle = "#c9ccd1";
    ctx.fillText(name, lx + 14, legendY);
    lx += ctx.measureText(name).width + 30;
  }
  // the gradient norm's line
  let ly = legendY;
  if (wrap) {
    lx = labelW;
    ly += 18;
  }
  ctx.strokeStyle = "rgba(255,255,255,0.85)";
  ctx.lineWidth = 1.2;
  ctx.beginPath();
  ctx.moveTo(lx, ly - 4);
  ctx.lineTo(lx + 8, ly - 7);
  ctx.lineTo(lx + 16, ly - 2);
  ctx.stroke();
  ctx.fillStyle = "#c9ccd1";
  ctx.fillText(NORM_KEY, lx + 22, ly);
}

/** Each layer's gradient health at ``current`` (its newest frame at or before it), in words,
 * with the rules that fired: "conv1 exploding: gradient norm 312 > 100". A quiet status the
 * tracker still holds back shows as healthy with how far it has got ("vanishing for 1 of 3 checks").
 * Frames written before reasons were stored give the status alone. */
export function healthSummary(frames: Frame[], layers: string[], current: number): { layer: string; status: string; text: string }[] {
  const newest = new Map<string, Frame>();
  for (const f of frames) {
    if (f.step > current) continue;
    const seen = newest.get(f.layer);
    if (!seen || f.step >= seen.step) newest.set(f.layer, f);
  }
  const out: { layer: string; status: string; text: string }[] = [];
  for (const layer of layers) {
    const f = newest.get(layer);
    if (!f) continue;
    const status = String(f.payload.status);
    const reasons = Array.isArray(f.payload.reasons) ? (f.payload.reasons as unknown[]).map(String) : [];
    const why = reasons.length === 0 ? "" : status === "healthy" ? ` (${reasons.join("; ")})` : `: ${reasons.join("; ")}`;
    out.push({ layer, status, text: `${layer} ${status}${why}${measures(f, reasons.join(" "))}` });
  }
  return out;
}

/** The check's numbers, after the words: " · gradient norm 0.42 · update 3.1e-3 of |w| a step"
 * (none for frames without them, nor those the rules that fired already say). */
function measures(f: Frame, said: string): string {
  const num = (k: string) => (typeof f.payload[k] === "number" && Number.isFinite(f.payload[k]) ? (f.payload[k] as number) : null);
  const g = said.includes("gradient norm") ? null : num("grad_norm");
  const u = said.includes("update ratio") ? null : num("update_ratio");
  const d = num("dead_fraction");
  const fmt = (v: number) => (v !== 0 && (Math.abs(v) < 1e-2 || Math.abs(v) >= 1e4) ? v.toExponential(1) : String(Number(v.toPrecision(3))));
  return (g === null ? "" : ` · gradient norm ${fmt(g)}`) + (u === null ? "" : ` · update ${fmt(u)} of |w| a step`) +
    (d ? ` · ${Math.round(d * 100)}% of maps dead` : "");
}
