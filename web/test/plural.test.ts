// Counts in words: one helper for every page's "1 filter" and "3 filters".
import { describe, expect, it } from "vitest";
import { noun, plural } from "../src/views/plural";

describe("counts in words", () => {
  it("takes the singular for exactly one, the plural for any other number", () => {
    expect(noun(1, "filter")).toBe("filter");
    expect(noun(0, "filter")).toBe("filters");
    expect(noun(2, "recording step")).toBe("recording steps");
    expect(noun(1, "it", "them")).toBe("it");
    expect(noun(3, "it", "them")).toBe("them");
  });

  it("says the count with its word, thousands separated", () => {
    expect(plural(1, "frozen filter")).toBe("1 frozen filter");
    expect(plural(0, "frozen filter")).toBe("0 frozen filters");
    expect(plural(1200, "map")).toBe("1,200 maps");
    expect(plural(2, "child", "children")).toBe("2 children");
  });
});
