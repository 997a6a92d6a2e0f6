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
