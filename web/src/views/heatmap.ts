// Correlation heatmap: Pearson correlation between the layer's filters, filters reordered so
// that each group is contiguous, groups outlined in their colours, dead filters hatched.
import { diverging, groupColor } from "../colors";
import type { Frame } from "../frames";
import { emptyState, fitCanvas } from "./canvas";

export function drawHeatmap(canvas: HTMLCanvasElement, corr: Frame | undefined, groups: Frame | undefined): void {
  const size = Math.min(canvas.clientWidth || 300, 420);
  const ctx = fitCanvas(canvas, size);
  if (!corr) return emptyState(ctx, "no correlation frames yet");
  const m = corr.payload.matrix;
  const F = m.shape[0];
  const labels: number[] = groups && groups.payload.labels.shape[0] === F ? Array.from(groups.payload.labels.data as Int32Array) : new Array(F).fill(-1);
  const order = Array.from({ length: F }, (_, i) => i).sort((a, b) => {
    const ga = labels[a] < 0 ? Infinity : labels[a], gb = labels[b] < 0 ? Infinity : labels[b];
    return ga - gb || a - b;
  });
  const cell = size / F;
  const img = ctx.createImageData(F, F);
  for (let i = 0; i < F; i++) {
    for (let j = 0; j < F; j++) {
      const [r, g, b] = diverging(m.data[order[i] * F + order[j]] as number);
      const p = (i * F + j) * 4;
      img.data[p] = r * 255;
      img.data[p + 1] = g * 255;
      img.data[p + 2] = b * 255;
      img.data[p + 3] = 255;
    }
  }
  const tmp = document.createElement("canvas");
  tmp.width = F;
  tmp.height = F;
  tmp.getContext("2d")!.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, size, size);
  let start = 0;
  while (start < F) {
    const g = labels[order[start]];
    let end = start;
    while (end + 1 < F && labels[order[end + 1]] === g) end++;
    if (g >= 0) {
      ctx.strokeStyle = groupColor(g);
      ctx.lineWidth = 2.5;
      ctx.strokeRect(start * cell + 1, start * cell + 1, (end - start + 1) * cell - 2, (end - start + 1) * cell - 2);
    }
    start = end + 1;
  }
  canvas.title = `filters in group order: ${order.join(", ")}`;
}
