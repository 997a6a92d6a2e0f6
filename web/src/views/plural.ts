// Counts in words, alike on every page: "1 filter", "3 filters", "1,200 maps".

/** The word for ``n`` things: ``one`` for exactly one, else ``many`` (``one`` + "s" unless given). */
export function noun(n: number, one: string, many = `${one}s`): string {
  return n === 1 ? one : many;
}

/** A count with its thousands separated, as every page writes counts and steps: "1,200". */
export function count(n: number): string {
  return n.toLocaleString("en-US");
}

/** "1 filter", "3 filters", "1,200 filters": the count (thousands separated) and its word. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${count(n)} ${noun(n, one, many)}`;
}
