// The Runs page: every run in the server's log directory, live-updated; tick two or more to
// compare them (#/compare).
import "./compare.css";
import { followRuns, listRuns, type RunInfo, type RunSummary } from "../api";
import { compareHash, loadPicks, savePicks } from "../compareRoute";
import { dropMarks, type DropMarks } from "../views/runNote";
import { runLabel, showStatus } from "../views/runStatus";
import { filterChanges, healthCell, lastValues, NO_SUMMARY } from "../views/runSummary";

const GAPS_HELP =
  "frames a run lost (its monitor's queue was full, or a sink failed: point at the mark for its causes), and, quieter, " +
  "recording steps its overhead budget deferred on purpose";
const VALUES_HELP = "each run's last logged values (loss, then accuracies, then the rest): point at a cell for all of them";
const HEALTH_HELP = "the layers a gradient-health check flagged (vanishing, exploding, stalled or non-finite gradients), " +
  "their last check's status and how many of their checks flagged them";
const FILTERS_HELP = "each pruned layer's filters before its first pruning → after its last";
/** the table's columns (the empty rows span them all) */
const COLUMNS = 10;

export function runsPage(root: HTMLElement, setConnection: (up: boolean) => void): () => void {
  root.innerHTML = `
    <section class="page-head"><h1>Runs</h1>
      <p class="muted">Every run of this server's log directory. Live runs update as they train; click one to open its dashboard,
        or tick two or more to compare their scalars side by side.
        To look inside a trained model, open the <a href="#/explore" id="open-explorer">model explorer</a>.</p>
      <div class="compare-bar"><button id="compare" type="button" disabled>Compare (0)</button>
        <button id="clear-picks" class="clear-picks" type="button" hidden>clear</button>
        <span id="compare-hint" class="muted">tick two or more runs to compare them</span></div></section>
    <table class="runs"><thead><tr><th>run</th><th>status</th><th class="model">model</th><th class="started">started</th><th>steps</th>
      <th class="num frames">frames</th><th class="last-values" title="${VALUES_HELP}">last values</th>
      <th class="health" title="${HEALTH_HELP}">health</th><th class="filters" title="${FILTERS_HELP}">filters</th>
      <th class="gaps" title="${GAPS_HELP}" hidden>gaps</th></tr></thead>
    <tbody id="runs-body"><tr><td colspan="${COLUMNS}" class="muted">loading…</td></tr></tbody></table>`;
  const body = root.querySelector<HTMLTableSectionElement>("#runs-body")!;
  const gapsHead = root.querySelector<HTMLTableCellElement>("th.gaps")!;
  const runs = new Map<string, RunInfo>();
  // the runs ticked, in the order they were ticked (kept for the tab: see loadPicks)
  const picks = new Set(loadPicks());
  let listed = false; // (until the list comes, a tick of a run not listed yet is kept)
  const compareButton = root.querySelector<HTMLButtonElement>("#compare")!;
  const clearButton = root.querySelector<HTMLButtonElement>("#clear-picks")!;
  const hint = root.querySelector<HTMLElement>("#compare-hint")!;
  const picked = () => [...picks].filter((id) => runs.has(id));
  const showPicks = () => {
    const n = picked().length;
    compareButton.textContent = `Compare (${n})`;
    compareButton.disabled = n < 2;
    compareButton.title = n < 2 ? "tick two or more runs to compare them" : `compare ${picked().join(", ")} side by side`;
    hint.hidden = n >= 2;
    hint.textContent = n === 1 ? "tick one more run to compare" : "tick two or more runs to compare them";
    clearButton.hidden = n === 0;
  };
  compareButton.addEventListener("click", () => {
    if (picked().length >= 2) location.hash = compareHash(picked());
  });
  clearButton.addEventListener("click", () => {
    picks.clear();
    savePicks(picks);
    for (const box of body.querySelectorAll<HTMLInputElement>("input.pick")) box.checked = false;
    for (const row of body.querySelectorAll(".run-row")) row.classList.remove("picked");
    showPicks();
    compareButton.focus();
  });
  const render = () => {
    const rows = [...runs.values()].sort((a, b) => (b.started ?? 0) - (a.started ?? 0));
    if (listed) {
      for (const id of picks) if (!runs.has(id)) picks.delete(id); // (a run no longer there)
    }
    showPicks();
    // (the rows are made again at every change: a tick that had the keyboard's focus gets it back)
    const focused = (document.activeElement as HTMLElement | null)?.closest?.(".run-row")?.getAttribute("data-run");
    const focusedPick = document.activeElement instanceof HTMLInputElement && document.activeElement.classList.contains("pick");
    if (rows.length === 0) {
      body.innerHTML = `<tr><td colspan="${COLUMNS}" class="muted">No runs yet. Start one with <code>convscope demo</code> or <code>convscope.watch(model, optimizer=opt)</code>.</td></tr>`;
      return;
    }
    const marks = new Map(rows.map((r) => [r.id, dropMarks(r.dropped ?? {})]));
    // (a column only where some run has gaps: a log directory without any lists as before)
    const gaps = [...marks.values()].some((m) => m.lost || m.deferred);
    gapsHead.hidden = !gaps;
    body.innerHTML = "";
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.className = "run-row";
      tr.dataset.run = r.id;
      const started = r.started ? new Date(r.started * 1000).toLocaleString() : "";
      const steps = r.last_step === null ? "" : `${r.first_step ?? 0}–${r.last_step}`;
      // (the tick and the id on one line: a narrow column breaks before the name beside them, never between them)
      tr.innerHTML = `<td><span class="run-id"><label class="pick-box"><input type="checkbox" class="pick" /></label><a href="#/runs/${encodeURIComponent(r.id)}"></a></span></td><td><span class="chip"></span></td>
        <td class="model"></td><td class="started">${started}</td><td class="steps">${steps}</td>
        <td class="num frames">${r.frames.toLocaleString("en-US")}</td>`;
      // (by id, as `convscope runs` lists them: runs of one name differ only there)
      const label = runLabel(r);
      const link = tr.querySelector("a")!;
      link.textContent = label.text;
      link.title = label.title;
      const box = tr.querySelector<HTMLInputElement>("input.pick")!;
      box.checked = picks.has(r.id);
      box.setAttribute("aria-label", `compare run ${r.id}${label.name ? `, named ${label.name}` : ""}`);
      box.title = `tick to compare run ${r.id} with others`;
      tr.classList.toggle("picked", box.checked);
      box.addEventListener("change", () => {
        if (box.checked) picks.add(r.id);
        else picks.delete(r.id);
        savePicks(picks);
        tr.classList.toggle("picked", box.checked);
        showPicks();
      });
      if (label.name) {
        const name = document.createElement("span");
        name.className = "muted run-alias";
        name.textContent = `named ${label.name}`;
        name.title = label.title;
        link.after(name);
      }
      tr.querySelector(".model")!.textContent = r.model ?? "";
      showStatus(tr.querySelector<HTMLElement>(".chip")!, r.status);
      tr.append(...summaryCells(r.summary ?? NO_SUMMARY));
      if (gaps) tr.appendChild(gapsCell(marks.get(r.id)!));
      tr.addEventListener("click", (e) => {
        if ((e.target as Element).closest(".pick-box")) return; // (a tick, not a way into the run)
        location.hash = `#/runs/${encodeURIComponent(r.id)}`;
      });
      body.appendChild(tr);
    }
    if (focused && focusedPick) body.querySelector<HTMLInputElement>(`.run-row[data-run="${CSS.escape(focused)}"] input.pick`)?.focus();
  };
  listRuns()
    .then((list) => {
      for (const r of list) runs.set(r.id, r);
      listed = true;
      render();
    })
    .catch((e) => (body.innerHTML = `<tr><td colspan="${COLUMNS}" class="error">${String(e)}</td></tr>`));
  return followRuns((r) => {
    runs.set(r.id, r);
    render();
  }, setConnection);
}

/** The run at a glance: its last values, the layers its gradient checks flagged, its pruned layers' filters. */
function summaryCells(summary: RunSummary): HTMLTableCellElement[] {
  const cell = (className: string, title = "") => {
    const td = document.createElement("td");
    td.className = className;
    td.title = title;
    return td;
  };
  const span = (className: string, text: string, title = "") => {
    const el = document.createElement("span");
    el.className = className;
    el.textContent = text;
    if (title) el.title = title;
    return el;
  };
  const values = lastValues(summary.scalars);
  const valuesCell = cell("last-values", values.title);
  if (values.shown.length) {
    const list = document.createElement("div");
    list.className = "last-values-list"; // (names and values in two columns, one line each)
    for (const { name, value } of values.shown) list.append(span("muted", name), span("value", value));
    if (values.more) list.append(span("muted more-values", `+${values.more} more`));
    valuesCell.append(list);
  }
  const health = healthCell(summary.health);
  const healthTd = cell("health", health.title);
  for (const flag of health.flagged) {
    const item = span(`health-flag ${flag.status}`, "");
    const dot = span("health-dot", "");
    dot.style.background = flag.color;
    item.append(dot, flag.text);
    healthTd.append(item);
  }
  if (health.quiet) healthTd.append(span("muted", health.quiet));
  const filtersTd = cell("filters");
  for (const change of filterChanges(summary.filters)) filtersTd.append(span("pruned-layer", change.text, change.title));
  return [valuesCell, healthTd, filtersTd];
}

/** A warning mark for frames lost, and a quiet note for recording steps deferred: empty for a run without either. */
function gapsCell(marks: DropMarks): HTMLTableCellElement {
  const td = document.createElement("td");
  td.className = "gaps";
  for (const [key, cls] of [["lost", "lost-mark"], ["deferred", "deferred-mark"]] as const) {
    const m = marks[key];
    if (!m) continue;
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = m.mark;
    span.title = m.title;
    td.appendChild(span);
  }
  return td;
}
