// A run's status chip on the Runs page and the run's header: words, style and tooltip.
import { describe, expect, it } from "vitest";
import { showStatus, statusChip } from "../src/views/runStatus";

describe("run status chip", () => {
  it("says interrupted apart from failed, with what it means", () => {
    const chip = statusChip("interrupted");
    expect(chip.label).toBe("interrupted");
    expect(chip.className).toBe("chip interrupted");
    expect(chip.title).toContain("the server stopped while a monitor was streaming this run");
    expect(chip.title).toContain("resumes as live if its training reconnects");
    expect(statusChip("failed").className).toBe("chip failed");
    expect(statusChip("failed").title).not.toBe(chip.title);
  });

  it("gives every known status its class and a tooltip", () => {
    for (const status of ["live", "finished", "failed", "crashed", "interrupted"]) {
      const chip = statusChip(status);
      expect(chip).toMatchObject({ label: status, className: `chip ${status}` });
      expect(chip.title.length).toBeGreaterThan(10);
    }
  });

  it("shows a status it does not know as its text, unstyled", () => {
    expect(statusChip('x" onmouseover="y')).toEqual({ label: 'x" onmouseover="y', className: "chip", title: "" });
    expect(statusChip("constructor")).toEqual({ label: "constructor", className: "chip", title: "" });
  });

  it("sets a chip element's text, class and title", () => {
    const el = { textContent: null as string | null, className: "chip live", title: "old" };
    showStatus(el, "interrupted");
    expect(el).toEqual({ textContent: "interrupted", className: "chip interrupted", title: statusChip("interrupted").title });
  });
});
