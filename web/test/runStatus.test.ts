// A run's status chip on the Runs page and the run's header: words, style and tooltip.
import { describe, expect, it } from "vitest";
import { followBox, runLabel, showStatus, statusChip } from "../src/views/runStatus";

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

describe("run labels", () => {
  it("names a run by its id, as `convscope runs` does, with its name beside it where that differs", () => {
    // two demo runs share a name: only their ids tell them apart
    const second = runLabel({ id: "lenet5-simplified-demo-2", name: "lenet5-simplified-demo" });
    expect(second).toEqual({
      text: "lenet5-simplified-demo-2",
      name: "lenet5-simplified-demo",
      title: "run lenet5-simplified-demo-2, named lenet5-simplified-demo",
    });
    expect(runLabel({ id: "lenet5-simplified-demo", name: "lenet5-simplified-demo" })).toEqual({
      text: "lenet5-simplified-demo", name: null, title: "run lenet5-simplified-demo",
    });
    expect(runLabel({ id: "r1", name: "" }).name).toBeNull();
    expect(runLabel({ id: "r1", name: null }).text).toBe("r1");
  });
});

describe("follow live", () => {
  it("is offered only while the run is live, ticked as the reader left it", () => {
    expect(followBox("live", true)).toEqual({ disabled: false, checked: true, title: "jump to new steps as they arrive" });
    expect(followBox("live", false)).toMatchObject({ disabled: false, checked: false }); // scrubbed back: not dragged forward
  });

  it("is off and says why on a run that is not live, whatever was chosen", () => {
    for (const status of ["finished", "failed", "crashed", "interrupted"]) {
      for (const following of [true, false]) {
        const box = followBox(status, following);
        expect(box).toMatchObject({ disabled: true, checked: false });
        expect(box.title).toContain(`this run is ${status}`);
        expect(box.title).toContain("resumes");
      }
    }
    expect(followBox("", true)).toMatchObject({ disabled: true, checked: false }); // (no status yet)
  });

  it("comes back when a finished run turns live again (a resumed training)", () => {
    expect(followBox("finished", true).checked).toBe(false);
    expect(followBox("live", true)).toMatchObject({ disabled: false, checked: true });
  });
});
