// The scalars view draws at most a few thousand points of each logged value.
import { describe, expect, it } from "vitest";
import { evenly } from "../src/views/evenly";

describe("evenly", () => {
  it("keeps a short series whole", () => {
    expect(evenly([1, 2, 3], 5)).toEqual([1, 2, 3]);
    expect(evenly([], 5)).toEqual([]);
  });

  it("thins a long one to about `most` points, spread over it, with its first and last", () => {
    const steps = Array.from({ length: 100_001 }, (_, i) => i + 1);
    const kept = evenly(steps, 4000);
    expect(kept.length).toBeLessThanOrEqual(4001);
    expect(kept.length).toBeGreaterThan(3000);
    expect(kept[0]).toBe(1);
    expect(kept[kept.length - 1]).toBe(100_001);
    const gaps = new Set(kept.slice(1, -1).map((s, i) => s - kept[i]));
    expect(gaps).toEqual(new Set([26])); // one stride, the same everywhere but at the end
  });
});
