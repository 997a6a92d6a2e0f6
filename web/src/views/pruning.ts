// The prunings of a run in words, under the scalars (where their dashed lines are): which layer
// lost which filters at which step, why, and which layers lost the same filters with it. The
// filters by their original numbers (as the layer numbered them before any pruning, as every
// view does): a second pruning's frame numbers them as the first left them.
import type { Frame } from "../frames";
import { originalRemoved } from "./filterNumbers";
import { noun } from "./plural";

const list = (v: unknown): number[] => (Array.isArray(v) ? v.map(Number) : v && typeof v === "object" && "data" in v ? Array.from((v as { data: ArrayLike<number> }).data) : []);

/** One line per pruning frame, oldest first. */
export function pruningLines(frames: Frame[]): string[] {
  const original = originalRemoved(frames);
  return frames
    .filter((f) => f.kind === "pruning")
    .sort((a, b) => a.step - b.step)
    .map((f) => {
      const p = f.payload;
      const removed = original.get(f) ?? list(p.removed);
      const coupled = p.coupled && typeof p.coupled === "object" ? Object.keys(p.coupled as object) : [];
      const params = Number.isFinite(Number(p.params_before)) && Number.isFinite(Number(p.params_after))
        ? `; parameters ${Number(p.params_before).toLocaleString("en")} → ${Number(p.params_after).toLocaleString("en")}` : "";
      return `step ${f.step}: ${f.layer} ${p.before} → ${p.after} filters, removed ${noun(removed.length, "filter")} ${removed.join(", ")}` +
        (p.reason ? ` (${String(p.reason).split("; ")[0]})` : "") +
        (coupled.length ? `; ${coupled.join(", ")} lost the same` : "") + params;
    });
}
