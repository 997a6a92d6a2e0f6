// Thinning a long series for drawing: what a plot shows of a value logged at every step.

/** At most `most` of `sorted` (ascending), evenly spread: every k-th one, and always the last. */
export function evenly(sorted: number[], most: number): number[] {
  const stride = Math.ceil(sorted.length / Math.max(1, most));
  if (stride <= 1) return sorted;
  const out = sorted.filter((_, i) => i % stride === 0);
  if (out[out.length - 1] !== sorted[sorted.length - 1]) out.push(sorted[sorted.length - 1]);
  return out;
}
