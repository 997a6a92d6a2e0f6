// Colour maps shared by the views.

/** A categorical palette for filter groups: stable group ids give stable colours. */
const PALETTE = [
  "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
  "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000",
  "#ffd8b1", "#000075",
];
export const NO_GROUP = "#8a8f98";

export function groupColor(id: number): string {
  return id < 0 ? NO_GROUP : PALETTE[id % PALETTE.length];
}

/** Blue (negative) - white - red (positive) for t in [-1, 1]; returns [r, g, b] in 0..1. */
export function diverging(t: number): [number, number, number] {
  const x = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  if (x < 0) {
    const a = -x;
    return [1 - 0.85 * a, 1 - 0.6 * a, 1 - 0.05 * a];
  }
  return [1 - 0.05 * x, 1 - 0.8 * x, 1 - 0.85 * x];
}

/** Viridis-like ramp for t in [0, 1] (5-stop linear interpolation). */
const VIRIDIS: [number, number, number][] = [
  [68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37],
];
export function sequential(t: number): [number, number, number] {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i], b = VIRIDIS[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

export const STATUS_COLORS: Record<string, string> = {
  healthy: "#3cb44b",
  vanishing: "#4363d8",
  exploding: "#e6194b",
  stalled: "#9aa0a6",
  nonfinite: "#f58231", // (orange: black vanished into the dark page)
  "non-finite": "#f58231",
};
