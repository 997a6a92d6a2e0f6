// Critical features: the input as the model sees it with the saliency map laid over it
// (transparent where there is no evidence, yellow-red where the evidence is strongest).
import type { Saliency } from "./client";
import { decodeBase64 } from "./logic";

/** Draw the input scaled to size x size, and the saliency on top when given; returns the overlay's pixel count. */
export function drawOverlay(canvas: HTMLCanvasElement, image: HTMLImageElement | null, sal: Saliency | null, size = 224, alpha = 0.65): number {
  canvas.width = size;
  canvas.height = size;
  canvas.style.width = `${size}px`;
  canvas.style.height = `${size}px`;
  const ctx = canvas.getContext("2d")!;
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, size, size);
  if (image) ctx.drawImage(image, 0, 0, size, size);
  if (!sal) return 0;
  const px = decodeBase64(sal.data);
  const layer = document.createElement("canvas");
  layer.width = sal.width;
  layer.height = sal.height;
  const lctx = layer.getContext("2d")!;
  const img = lctx.createImageData(sal.width, sal.height);
  let shown = 0;
  for (let i = 0; i < px.length; i++) {
    const t = px[i] / 255;
    img.data[i * 4] = 255;
    img.data[i * 4 + 1] = Math.round(255 * Math.max(0, 1 - 1.6 * (1 - t)) + 40 * (1 - t));
    img.data[i * 4 + 2] = 0;
    img.data[i * 4 + 3] = Math.round(255 * alpha * Math.min(1, t * 1.4));
    if (t > 0.1) shown++;
  }
  lctx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(layer, 0, 0, size, size);
  return shown;
}
