// A run's status as the Runs page and the run's header show it: a chip with its words, its style
// (CSS class "chip <status>") and a tooltip that says what the status means.
import type { RunInfo } from "../api";

export type RunStatus = RunInfo["status"];

/** What each status is called and means (the tooltip). */
const STATUSES: Record<RunStatus, { label: string; title: string }> = {
  live: { label: "live", title: "its training is writing it now" },
  finished: { label: "finished", title: "its training ended and closed it" },
  failed: { label: "failed", title: "its training ended with an error" },
  crashed: {
    label: "crashed",
    title: "its process died, or its monitor went silent, without closing it; what it committed is readable",
  },
  interrupted: {
    label: "interrupted",
    title:
      "the server stopped while a monitor was streaming this run; frames sent after that were not received; " +
      "the run resumes as live if its training reconnects",
  },
};

export interface StatusChip {
  label: string;
  /** "chip <status>" for a status the page knows, else "chip" (unstyled) */
  className: string;
  title: string;
}

export function statusChip(status: string): StatusChip {
  const known = Object.prototype.hasOwnProperty.call(STATUSES, status) ? STATUSES[status as RunStatus] : undefined;
  if (!known) return { label: status, className: "chip", title: "" };
  return { label: known.label, className: `chip ${status}`, title: known.title };
}

/** Show ``status`` on a chip element: its words, class and tooltip (text only, never markup). */
export function showStatus(el: { textContent: string | null; className: string; title: string }, status: string): void {
  const chip = statusChip(status);
  el.textContent = chip.label;
  el.className = chip.className;
  el.title = chip.title;
}

/** How the Runs page and a run's header name a run: by its id, as `convscope runs` does (two runs
 *  of one name, such as "demo" and "demo-2", differ only there), with its name beside it where it differs. */
export interface RunLabel {
  /** the run's id: what tells it apart */
  text: string;
  /** the name it was given, where that is not its id (shown quieter, beside the id); else null */
  name: string | null;
  /** tooltip: both */
  title: string;
}

export function runLabel(run: { id: string; name?: string | null }): RunLabel {
  const name = run.name && run.name !== run.id ? run.name : null;
  return { text: run.id, name, title: name ? `run ${run.id}, named ${name}` : `run ${run.id}` };
}

/** The "follow live" box of a run's header: only a live run has new steps to follow. */
export interface FollowBox {
  disabled: boolean;
  checked: boolean;
  title: string;
}

export function followBox(status: string, following: boolean): FollowBox {
  if (status === "live") return { disabled: false, checked: following, title: "jump to new steps as they arrive" };
  const label = statusChip(status).label || "not live";
  return {
    disabled: true,
    checked: false,
    title: `nothing to follow: this run is ${label}, so no new steps arrive (this turns on if its training resumes)`,
  };
}
