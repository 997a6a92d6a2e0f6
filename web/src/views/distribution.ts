// Distribution view: each filter's feature-map values (normalised to [0, 1]) as a histogram
// line, coloured by the filter's correlation group (grey: in no group).
import { groupColor } from "../colors";
import type { Frame } from "../frames";
import { emptyState, fitCanvas } from "./canvas";

export function drawDistribution(canvas: HTMLCanvasElement, dist: Frame | undefined, groups: Frame | undefined): void {
  const ctx = fitCanvas(canvas, 220);
  if (!dist) return emptyState(ctx, "no distribution frames yet");
  const counts = dist.payload.counts;
  const [F, B] = counts.shape;
  const labels: ArrayLike<number> | null = groups && groups.payload.labels.shape[0] === F ? groups.payload.labels.data : null;
  const w = canvas.clientWidth, h = 220, pad = 28;
  ctx.clearRect(0, 0, w, h);
  let peak = 0;
  for (let i = 0; i < F * B; i++) peak = Math.max(peak, counts.data[i] as number);
  ctx.strokeStyle = "#3a3f47";
  ctx.strokeRect(pad, 6, w - pad - 6, h - pad - 6);
  ctx.fillStyle = "#8a8f98";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText("0", pad - 3, h - 10);
  ctx.fillText("1", w - 12, h - 10);
  ctx.fillText("normalised value", w / 2 - 40, h - 8);
  // grouped filters drawn last, on top
  const order = Array.from({ length: F }, (_, i) => i).sort((a, b) => (labels ? (labels[a] >= 0 ? 1 : 0) - (labels[b] >= 0 ? 1 : 0) : 0));
  for (const f of order) {
    const g = labels ? labels[f] : -1;
    ctx.strokeStyle = groupColor(g);
    ctx.globalAlpha = g >= 0 ? 0.95 : 0.45;
    ctx.lineWidth = g >= 0 ? 1.6 : 1;
    ctx.beginPath();
    for (let b = 0; b < B; b++) {
      const v = (counts.data[f * B + b] as number) / (peak || 1);
      const x = pad + ((b + 0.5) / B) * (w - pad - 6);
      const y = 6 + (1 - Math.sqrt(v)) * (h - pad - 6);
      if (b === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
}
