// Colour maps shared by the views.

/** A categorical palette for filter groups: stable group ids give stable colours. */
const PALETTE = [
  "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
  "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000",
  "#ffd8b1", "#000075",
];
export const NO_GROUP = "#8a8f98";
/** The dashboard's current step, a line across the time charts (the health strip, scalars, the redundancy timeline). */
export const CURRENT_STEP = "#ffd166";

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

/** "#rrggbb" as [r, g, b] in 0..1. */
export function hexRgb(hex: string): [number, number, number] {
  const v = parseInt(hex.slice(1, 7), 16);
  return [(v >> 16) / 255, ((v >> 8) & 255) / 255, (v & 255) / 255];
}

/** Relative luminance (WCAG) of [r, g, b] in 0..1. */
export function luminance([r, g, b]: [number, number, number]): number {
  const lin = (c: number) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** Contrast ratio (WCAG, 1 to 21) of two colours given as [r, g, b] in 0..1. */
export function contrast(a: [number, number, number], b: [number, number, number]): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

export const HALO_DARK = "#0b0d10";
export const HALO_LIGHT = "#f4f5f7";

/** How to outline a shape in ``color`` so that it shows on any background: strokes to draw one
 * over the other, widest first. A dark halo outermost (it stands out from every colour of the
 * diverging map), then the colour itself along its middle; a colour too dark to be told on the
 * halo gets a light ring between them. */
export function outlineStrokes(color: string): { color: string; width: number }[] {
  if (contrast(hexRgb(color), hexRgb(HALO_DARK)) >= 3) return [{ color: HALO_DARK, width: 5 }, { color, width: 2.5 }];
  return [{ color: HALO_DARK, width: 6.5 }, { color: HALO_LIGHT, width: 4.5 }, { color, width: 2.5 }];
}
