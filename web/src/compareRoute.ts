// The run comparison's route, #/compare?runs=id1,id2: a link that can be shared or bookmarked.
// Each id is %-encoded (a comma in an id reads %2C), the ids joined by commas.

const PREFIX = "#/compare";

/** The route that compares ``runs``, in their order (each once). */
export function compareHash(runs: string[]): string {
  return `${PREFIX}?runs=${unique(runs).map(encodeURIComponent).join(",")}`;
}

/** The runs a compare route names, in its order, each once (empty: it names none); null where
 * ``hash`` is not a compare route. An id that is not valid %-encoding is taken as typed. */
export function parseCompareHash(hash: string): string[] | null {
  if (hash !== PREFIX && !hash.startsWith(PREFIX + "?")) return null;
  const query = hash.slice(PREFIX.length + 1);
  // (split before decoding: an id's own commas are encoded, the separators are not)
  const raw = query.split("&").find((p) => p.startsWith("runs="))?.slice(5) ?? "";
  return unique(raw.split(",").map((part) => decode(part).trim()).filter(Boolean));
}

/** What a comparison of ``runs`` is called (the page's title): "a vs b", "a vs b vs c", and
 * beyond three "a vs b vs c + 2 more". */
export function compareTitle(runs: string[]): string {
  if (runs.length === 0) return "no runs";
  const shown = runs.slice(0, 3).join(" vs ");
  return runs.length > 3 ? `${shown} + ${runs.length - 3} more` : shown;
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function unique(runs: string[]): string[] {
  return [...new Set(runs)];
}

const PICKS = "convscope-compare";

/** The runs ticked for comparison on the Runs page, in the order they were ticked (kept for the
 * browser tab, so that going to a run or a comparison and back keeps them). */
export function loadPicks(): string[] {
  try {
    const v = JSON.parse(sessionStorage.getItem(PICKS) ?? "[]");
    return Array.isArray(v) ? unique(v.filter((x): x is string => typeof x === "string")) : [];
  } catch {
    return [];
  }
}

export function savePicks(runs: Iterable<string>): void {
  try {
    sessionStorage.setItem(PICKS, JSON.stringify(unique([...runs])));
  } catch {
    /* storage refused (private mode, full): the ticks last as long as the page */
  }
}
