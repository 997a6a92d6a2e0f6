// Counts in words, alike on every page: "1 filter", "3 filters", "1,200 maps".

/** The word for ``n`` things: ``one`` for exactly one, else ``many`` (``one`` + "s" unless given). */
export function noun(n: number, one: string, many = `${one}s`): string {
  return n === 1 ? one : many;
}

/** "1 filter", "3 filters", "1,200 filters": the count (thousands separated) and its word. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString("en-US")} ${noun(n, one, many)}`;
}
