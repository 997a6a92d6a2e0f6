// The compare page (#/compare?runs=a,b): runs side by side, one chart per scalar any of them
// logged (loss, accuracy, lr ...), per pruned layer its filter count, per layer whose gradient
// health was checked its gradient norm with the checks that flagged it (marked, and said in words
// under the chart), and per layer whose filters were grouped its filters and how many of them are
// redundant (first and last said in words under the chart), one line per run in a colour of its
// own. Runs still training update live, over the dashboard's live stream (only the frames these
// charts draw).
import "./compare.css";
import { followRun, getRun, HttpError, readFrames, type RunDetails } from "../api";
import { compareTitle, savePicks } from "../compareRoute";
import type { Frame } from "../frames";
import {
  addHealth, type ChartLine, CompareChart, compareCharts, FLAGS, flagMarker, flagText, filtersLayer, filtersName, gradNormLayer,
  gradNormLines, healthFlags, healthyText, redundancyCharts, redundancyLayer, redundancyLines, redundancyText, redundantStyle, type RunHealth,
  type RunLines, type RunStyle, runStyle, unsentChecks,
} from "../views/compare";
import { filterCounts, graphFilters, prunedLayers } from "../views/pruning";
import { addRedundancy, countRows, type RunRedundancy } from "../views/redundancy";
import { runLabel, showStatus } from "../views/runStatus";
import { addScalars, type ScalarLine } from "../views/scalars";

/** The kinds these charts draw from (run_meta: a graph that came late, for the filter counts). */
const KINDS = ["scalar", "scalars", "pruning", "gradient_health", "groups", "run_meta"];

interface RunState {
  id: string;
  style: RunStyle;
  details: RunDetails | null;
  /** why it is not compared: null while it loads or once it has */
  problem: "missing" | string | null;
  scalars: Map<string, ScalarLine>;
  health: RunHealth;
  /** each layer's gradient-health checks that its read was not sent (a long run's thinned series) */
  unsent: Map<string, number>;
  /** each grouped layer's filters and redundant filters, by step */
  redundancy: RunRedundancy;
  prunings: Frame[];
  seen: Set<string>; // the prunings' (layer, step): each counted once, fetched and streamed alike
  graph: unknown;
  first: number;
  last: number;
  /** the row its frames were read up to (X-Convscope-Cursor): its live stream goes on from there */
  cursor: number | null;
  entry: HTMLLIElement;
}

interface Panel {
  section: HTMLElement;
  chart: CompareChart;
  note: HTMLElement;
  /** under a gradient-norm chart its flags, under a redundancy chart its counts, in words (null on the other charts) */
  words: HTMLUListElement | null;
}

export function comparePage(root: HTMLElement, ids: string[], setConnection: (up: boolean) => void): () => void {
  root.innerHTML = `
    <section class="page-head cmp-head">
      <div class="cmp-title"><a href="#/runs" class="muted">Runs</a> <span class="muted">/</span> <h1 id="cmp-title"></h1></div>
      <p class="muted cmp-intro">Scalars over the steps, one line per run: point at a chart to read every run's value at that step on every chart.
        Where gradient health was recorded, each layer's gradient norm follows, the checks that flagged it marked; where filters were grouped, each layer's filters and how many of them are redundant. Live runs update as they train. <a href="#/runs" id="cmp-change">Change the runs compared</a> on the Runs page.</p>
      <ul class="cmp-legend" aria-label="runs compared"></ul>
      <div class="cmp-problems error" role="alert" hidden></div>
    </section>
    <div class="cmp-grid"><p class="muted cmp-empty">loading…</p></div>`;
  const $ = <T extends HTMLElement>(sel: string) => root.querySelector<T>(sel)!;
  const legend = $<HTMLUListElement>(".cmp-legend");
  const problems = $(".cmp-problems");
  const grid = $(".cmp-grid");
  const heading = $("#cmp-title");
  const showTitle = (names: string[]) => {
    document.title = names.length ? `Compare ${compareTitle(names)} · convscope` : "Compare runs · convscope";
    heading.textContent = names.length ? `Compare ${compareTitle(names)}` : "Compare runs";
    heading.title = names.join(", ");
  };
  showTitle(ids);
  if (ids.length === 0) {
    legend.hidden = true;
    grid.innerHTML = `<p class="cmp-empty">Nothing to compare yet: on the <a href="#/runs">Runs page</a>, tick two or more runs and press Compare.</p>`;
    return () => {};
  }
  savePicks(ids); // (back on the Runs page, these are the runs ticked)

  const runs: RunState[] = ids.map((id, i) => {
    const entry = document.createElement("li");
    entry.dataset.run = id;
    // (the colours go to the runs there are, in order, once their details came: see below)
    const state: RunState = { id, style: runStyle(i), details: null, problem: null, scalars: new Map(), health: new Map(), unsent: new Map(), redundancy: new Map(),
      prunings: [], seen: new Set(), graph: null, first: 0, last: 0, cursor: null, entry };
    entry.innerHTML = `<a class="cmp-run" href="#/runs/${encodeURIComponent(id)}"></a><span class="muted run-alias" hidden></span>
      <span class="chip" hidden></span><span class="muted cmp-model"></span><span class="muted cmp-steps"></span><span class="muted cmp-none" hidden>no scalars yet</span>`;
    const link = entry.querySelector("a")!;
    link.textContent = id;
    link.title = `open run ${id}'s dashboard`;
    legend.appendChild(entry);
    return state;
  });
  const panels = new Map<string, Panel>();
  const healthHead = gradientHead();
  const redundancyHead = redundancySectionHead();
  let loaded = false;
  let pending = false;
  let closed = false; // (the page was left: what comes after draws nothing)

  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  };

  const compared = () => runs.filter((r) => r.details && !r.problem);

  /** A run's lines: what it logged, the filter count of each layer some run's prunings took
   * filters from (its own prunings' counts, or where it pruned none there, its size in the graph),
   * and the gradient norm of each layer it checked. */
  function linesOf(r: RunState, pruned: Set<string>): Map<string, ScalarLine> {
    const lines = new Map(r.scalars);
    for (const [name, line] of gradNormLines(r.health)) lines.set(name, line);
    const initial = graphFilters(r.graph);
    const own = prunedLayers(r.prunings);
    for (const layer of pruned) {
      if (!own.has(layer) && !initial.has(layer)) continue;
      const counts = filterCounts(r.prunings, layer, initial.get(layer), r.first, r.last);
      if (counts) lines.set(filtersName(layer), counts);
    }
    return lines;
  }

  let specs: ReturnType<typeof compareCharts> = [];
  let redundancy: ReturnType<typeof redundancyCharts> = [];

  /** A run's words on the charts: its id, and its name where it has one. */
  const runWords = (r: RunState): string => {
    const label = runLabel(r.details ?? { id: r.id });
    return label.name ? `${label.text} (${label.name})` : label.text;
  };

  function draw(): void {
    if (closed) return;
    const shown = compared();
    const pruned = new Set(shown.flatMap((r) => [...prunedLayers(r.prunings)]));
    const lines: RunLines[] = runs.map((r) => ({ run: r.id, lines: shown.includes(r) ? linesOf(r, pruned) : new Map() }));
    specs = compareCharts(lines);
    redundancy = redundancyCharts(runs.map((r) => ({ run: r.id, redundancy: shown.includes(r) ? r.redundancy : new Map() })));
    // every chart over the same steps, so that they line up (a loop: a long run has too many steps to spread into Math.min)
    let lo = Infinity, hi = -Infinity;
    const span = (line: Map<number, unknown>) => {
      for (const s of line.keys()) {
        if (s < lo) lo = s;
        if (s > hi) hi = s;
      }
    };
    for (const spec of specs) for (const { line } of spec.runs) span(line);
    for (const spec of redundancy) for (const { counts } of spec.runs) span(counts);
    const steps: [number, number] | null = lo > hi ? null : lo === hi ? [lo - 1, hi + 1] : [lo, hi];
    for (const r of shown) {
      r.entry.querySelector<HTMLElement>(".cmp-none")!.hidden = lines[runs.indexOf(r)].lines.size > 0 || !loaded;
      r.entry.querySelector(".cmp-steps")!.textContent = r.details?.last_step === null ? "" : `steps ${r.first}–${r.last}`;
    }
    if (specs.length === 0 && redundancy.length === 0) {
      for (const p of panels.values()) p.chart.destroy();
      panels.clear();
      healthHead.remove();
      redundancyHead.remove();
      const text = !loaded ? "loading…" : shown.length === 0 ? "Nothing to compare: none of these runs is in this log directory."
        : "None of these runs has logged a scalar yet: call monitor.log(loss=...) in the training loop. A live run's charts appear here as it logs.";
      grid.innerHTML = `<p class="muted cmp-empty"></p>`;
      grid.querySelector("p")!.textContent = text;
      return;
    }
    grid.querySelector(".cmp-empty")?.remove();
    const names = new Set([...specs.map((spec) => spec.name), ...redundancy.map((spec) => spec.name)]);
    for (const [name, panel] of panels) {
      if (names.has(name)) continue;
      panel.chart.destroy(); // (no run has it now: a run whose frames could not be read)
      panel.section.remove();
      panels.delete(name);
    }
    const firstNorm = specs.find((spec) => gradNormLayer(spec.name) !== null); // (the gradient charts' heading goes before it)
    if (!firstNorm) healthHead.remove();
    if (!redundancy.length) redundancyHead.remove();
    // each chart (and heading) in the page's order, one that came late among the others
    let before: Element | null = grid.firstElementChild;
    const place = (element: HTMLElement) => {
      if (element !== before) grid.insertBefore(element, before);
      before = element.nextElementSibling;
    };
    const panelOf = (name: string): Panel => {
      let panel = panels.get(name);
      if (!panel) panels.set(name, (panel = makePanel(name)));
      place(panel.section);
      return panel;
    };
    /** Draw ``lines`` on ``panel``, the runs ``on`` it named on its section, and in its note the runs not on it (``not``: why). */
    const show = (panel: Panel, on: string[], lines: ChartLine[], not: string) => {
      panel.section.dataset.runs = on.join(",");
      const missing = shown.filter((r) => !on.includes(r.id)).map((r) => r.id);
      panel.note.textContent = missing.length ? `${not} ${missing.join(", ")}` : "";
      panel.note.hidden = !missing.length;
      panel.chart.steps = steps;
      panel.chart.draw(lines);
    };
    const marks = (r: RunState) => [...new Set(r.prunings.map((f) => f.step))];
    for (const spec of specs) {
      const layer = gradNormLayer(spec.name);
      if (spec === firstNorm) place(healthHead);
      const panel = panelOf(spec.name);
      const chartLines: ChartLine[] = spec.runs.map(({ run, index, line }) => {
        const r = runs[index];
        const checks = layer === null ? null : r.health.get(layer);
        const flags = checks ? [...checks].filter(([, c]) => c.status !== "healthy").map(([step, c]) => ({ step, value: c.norm, status: c.status })) : [];
        return { run, label: runWords(r), style: r.style, line, marks: marks(r), flags };
      });
      show(panel, spec.runs.map((r) => r.run), chartLines, layer === null ? "not in" : "no gradient checks in");
      if (panel.words && layer !== null) writeFlags(panel.words, layer, chartLines);
    }
    if (redundancy.length) place(redundancyHead);
    for (const spec of redundancy) {
      const panel = panelOf(spec.name);
      // each run's filters in its colour and style, then its redundant filters dashed (its prunings marked once)
      const chartLines: ChartLine[] = spec.runs.flatMap(({ run, index, counts }) => {
        const r = runs[index];
        const { filters, redundant } = redundancyLines(counts);
        return [
          { run, label: `${runWords(r)} filters`, style: r.style, line: filters, marks: marks(r) },
          { run, label: `${runWords(r)} redundant`, style: redundantStyle(r.style), line: redundant, marks: [] },
        ];
      });
      show(panel, spec.runs.map((r) => r.run), chartLines, "no filter groups in");
      if (panel.words) writeCounts(panel.words, spec);
    }
  }

  /** Under a redundancy chart, each run's filters and redundant filters at its first and last
   * recording, in words, after its colour. */
  function writeCounts(list: HTMLUListElement, spec: ReturnType<typeof redundancyCharts>[number]): void {
    list.replaceChildren(...spec.runs.map(({ run, index, counts }) => {
      const r = runs[index];
      const li = document.createElement("li");
      li.dataset.run = run;
      li.style.borderLeftColor = r.style.stroke;
      const who = document.createElement("span");
      who.className = "cmp-flag-run";
      who.textContent = runWords(r);
      li.append(who, `: ${redundancyText(counts)}`);
      return li;
    }));
  }

  /** How many gradient-health checks of ``layer`` run ``r`` has: those the page holds, and those of
   * a long run that its read was not sent. */
  const checkCount = (r: RunState, layer: string): number => (r.health.get(layer)?.size ?? 0) + (r.unsent.get(layer) ?? 0);

  /** Under a gradient-norm chart, each run's flags of ``layer`` in words, after its flags' marker
   * and its colour (or that it flagged none). */
  function writeFlags(list: HTMLUListElement, layer: string, lines: ChartLine[]): void {
    list.replaceChildren(...lines.flatMap(({ run, label, style }) => {
      const r = runs.find((r) => r.id === run);
      const checks = r?.health.get(layer);
      if (!r || !checks) return [];
      const total = checkCount(r, layer);
      const flags = healthFlags(checks, total);
      const item = (status: string | null, words: string): HTMLLIElement => {
        const li = document.createElement("li");
        li.dataset.run = run;
        li.style.borderLeftColor = style.stroke;
        const who = document.createElement("span");
        who.className = "cmp-flag-run";
        who.textContent = label;
        const what = document.createElement("span");
        what.textContent = words;
        if (status === null) li.classList.add("muted");
        else {
          li.dataset.status = status;
          li.insertAdjacentHTML("afterbegin", flagMarker(status));
        }
        li.append(who, " ", what);
        return li;
      };
      return flags.length ? flags.map((f) => {
        const li = item(f.status, flagText(f));
        li.dataset.from = String(f.from);
        return li;
      }) : [item(null, healthyText(total))];
    }));
  }

  function makePanel(name: string): Panel {
    const section = document.createElement("section");
    section.className = "panel cmp-panel";
    section.dataset.scalar = name;
    const layer = filtersLayer(name);
    const checked = gradNormLayer(name);
    const grouped = redundancyLayer(name);
    const help = layer !== null
      ? `The filters left in ${layer} over the steps: each pruning drops it (dashed lines mark a run's prunings); a run that pruned none of ${layer} stays at its size in the model.`
      : grouped !== null
      ? `${grouped}'s filters at each recording (a run's solid line) and how many of them are redundant (its dashed line): in a group of filters whose outputs correlate, every one but one, which a pruning could remove. The list under the chart says, run by run, both at the first and the last recording. Dashed upright lines mark a run's prunings.`
      : checked !== null
      ? `${checked}'s gradient norm at each gradient-health check, on a logarithmic axis (0 at the bottom: a layer whose units died). A marker on a run's line is a check that flagged ${checked} (its shape and colour say which flag: see the key above); the list under the chart says, run by run, what was flagged from which step, and why. Dashed lines mark a run's prunings.`
      : /^lr(\/|$)/.test(name) ? `The optimizer's learning rate (${name}) over the steps, as each run recorded it. Dashed lines mark a run's prunings.`
      : `${name} over the steps, as each run logged it (monitor.log(${name}=...)). Dashed lines mark a run's prunings.`;
    const h2 = document.createElement("h2");
    const title = document.createElement("span");
    title.textContent = layer !== null ? `${layer} filters` : checked !== null ? `${checked} gradient norm` : grouped !== null ? `${grouped} filter redundancy` : name;
    const mark = document.createElement("span");
    mark.className = "help";
    mark.title = help;
    mark.textContent = "?";
    const note = document.createElement("span");
    note.className = "muted cmp-note";
    note.hidden = true;
    h2.title = help;
    h2.append(title, mark, note);
    const body = document.createElement("div");
    body.className = "body";
    section.append(h2, body);
    let words: HTMLUListElement | null = null;
    if (checked !== null || grouped !== null) {
      words = document.createElement("ul");
      words.className = checked !== null ? "cmp-flags" : "cmp-flags cmp-counts";
      words.setAttribute("aria-label", checked !== null ? `${checked}'s gradient-health flags, run by run` : `${grouped}'s filters and redundant filters, run by run`);
      section.append(words);
    }
    return { section, chart: new CompareChart(body, name), note, words };
  }

  function showProblems(): void {
    const lines = runs.filter((r) => r.problem).map((r) => {
      const p = document.createElement("p");
      p.dataset.run = r.id;
      const id = document.createElement("code");
      id.textContent = r.id;
      if (r.problem === "missing") {
        p.append("No run named ", id, " in this log directory: it is left out of the comparison. ");
        const back = document.createElement("a");
        back.href = "#/runs";
        back.textContent = "The Runs page";
        p.append(back, " lists the runs there are.");
      } else {
        p.append("Run ", id, ` could not be read: ${r.problem}`);
      }
      return p;
    });
    problems.replaceChildren(...lines);
    problems.hidden = lines.length === 0;
  }

  function addFrames(r: RunState, frames: Frame[]): void {
    addScalars(r.scalars, frames);
    addHealth(r.health, frames);
    addRedundancy(r.redundancy, frames);
    for (const f of frames) {
      r.last = Math.max(r.last, f.step);
      if (f.kind === "pruning" && !r.seen.has(`${f.layer}\u0000${f.step}`)) {
        r.seen.add(`${f.layer}\u0000${f.step}`);
        r.prunings.push(f);
      }
      if (f.kind === "run_meta" && f.payload.graph && !r.graph) r.graph = f.payload.graph;
    }
  }

  async function loadDetails(r: RunState): Promise<void> {
    try {
      r.details = await getRun(r.id);
    } catch (e) {
      if (e instanceof HttpError) setConnection(true); // (the server answered: it is up, whatever the run)
      r.problem = e instanceof HttpError && e.status === 404 ? "missing" : String(e);
      r.entry.remove();
      showProblems();
      return;
    }
    const d = r.details;
    const label = runLabel(d);
    const link = r.entry.querySelector("a")!;
    link.title = `${label.title}: open its dashboard`;
    const alias = r.entry.querySelector<HTMLElement>(".run-alias")!;
    alias.textContent = label.name ? `named ${label.name}` : "";
    alias.hidden = !label.name;
    const chip = r.entry.querySelector<HTMLElement>(".chip")!;
    showStatus(chip, d.status);
    chip.hidden = false;
    r.entry.querySelector(".cmp-model")!.textContent = d.model ?? "";
    r.graph = d.meta?.graph ?? null;
    r.first = d.first_step ?? 0;
    r.last = d.last_step ?? 0;
  }

  async function loadFrames(r: RunState): Promise<void> {
    try {
      const read = await readFrames(r.id, { kind: KINDS.filter((k) => k !== "run_meta"), maxPoints: 3000 });
      r.cursor = read.cursor;
      r.unsent = unsentChecks(r.details?.counts, read.frames);
      addFrames(r, read.frames);
    } catch (e) {
      r.problem = String(e);
      r.entry.remove();
      showProblems();
      return;
    }
    schedule();
  }

  const stops: (() => void)[] = [];
  Promise.all(runs.map(loadDetails)).then(async () => {
    // each run there is gets a colour, in the link's order (a missing run takes none)
    compared().forEach((r, i) => {
      r.style = runStyle(i);
      r.entry.insertAdjacentHTML("afterbegin", swatch(r.style));
    });
    const names = compared().map((r) => r.id);
    if (closed) return; // (the page was left meanwhile)
    if (names.length && names.length < ids.length) showTitle(names); // (what is compared: without the runs not there)
    await Promise.all(compared().map(loadFrames));
    loaded = true;
    schedule();
    if (closed) return;
    for (const r of compared()) {
      const chip = r.entry.querySelector<HTMLElement>(".chip")!;
      // on from the row its frames were read up to: what was written since, each frame once (a
      // step is no cursor: frames of its last step written after the read would be missed); the
      // step only where the server named no row
      const from = r.cursor === null ? { since: r.last } : { after: r.cursor };
      stops.push(followRun(r.id, (f) => {
        addFrames(r, [f]);
        schedule();
      }, (status) => showStatus(chip, status), setConnection, { kinds: KINDS, ...from }));
    }
  });

  (window as any).convscopeCompare = {
    /** every chart's lines but the redundancy charts' (see redundancy): name to run id to [step, value] pairs, ascending, as logged (not thinned) */
    charts: () => Object.fromEntries(specs.map((s) => [s.name, Object.fromEntries(s.runs.map((r) => [r.run, [...r.line].sort((a, b) => a[0] - b[0])]))])),
    /** each run's colour (its lines' and its key's) */
    get colours() { return Object.fromEntries(compared().map((r) => [r.id, r.style.stroke])); },
    /** each redundancy chart's counts: layer to run id to [step, filters, redundant], ascending, as recorded (not thinned) */
    redundancy: () => Object.fromEntries(redundancy.map((s) => [s.layer, Object.fromEntries(s.runs.map((r) => [r.run, countRows(r.counts)]))])),
    /** each gradient-norm chart's flags: layer to run id to its flags (none: [], a run that checked it and flagged nothing) */
    health: () => Object.fromEntries(specs.flatMap((s) => {
      const layer = gradNormLayer(s.name);
      return layer === null ? [] : [[layer, Object.fromEntries(s.runs.map((r) => [r.run, healthFlags(runs[r.index].health.get(layer) ?? new Map(), checkCount(runs[r.index], layer))]))]];
    })),
    get loaded() { return loaded; },
  };
  return () => {
    closed = true;
    for (const stop of stops) stop();
    for (const p of panels.values()) p.chart.destroy();
  };
}

/** The heading of the gradient-norm charts, across the grid: what they show, and the key of the
 * flags' markers. */
function gradientHead(): HTMLElement {
  const head = document.createElement("div");
  head.className = "cmp-section";
  head.innerHTML = `<h2>Gradient health</h2>
    <p class="muted">Each watched layer's gradient norm at each check, one line per run, on a logarithmic axis: a norm of 0 (a layer whose units died) lies at the bottom.
      A marker on a run's line is a check that flagged the layer; under each chart, run by run, what was flagged, from which step and why.</p>
    <p class="cmp-flag-key">${FLAGS.map((s) => `<span>${flagMarker(s)} ${s}</span>`).join("")}</p>`;
  return head;
}

/** The heading of the redundancy charts, across the grid: what they show, and the key of a run's two lines. */
function redundancySectionHead(): HTMLElement {
  const head = document.createElement("div");
  head.className = "cmp-section";
  head.dataset.section = "redundancy";
  const line = (dash: number[] | null) => swatch({ stroke: "#c9ccd1", width: 2, dash });
  head.innerHTML = `<h2>Filter redundancy</h2>
    <p class="muted">Each watched layer's filters at each recording, one colour per run: how many it has, and how many of them are redundant
      (in a group of filters whose outputs correlate, every one but one: the filters a pruning could remove). Under each chart, run by run, both at the first and the last recording.</p>
    <p class="cmp-flag-key"><span>${line(null)} filters</span><span>${line(redundantStyle(runStyle(0)).dash)} redundant</span></p>`;
  return head;
}

/** A short stretch of the run's line, as its charts draw it (colour and dashes): the legend's key. */
function swatch(style: RunStyle): string {
  const dash = style.dash ? ` stroke-dasharray="${style.dash.join(" ")}"` : "";
  return `<svg class="cmp-swatch" viewBox="0 0 28 10" width="28" height="10" aria-hidden="true"><line x1="1" y1="5" x2="27" y2="5" stroke="${style.stroke}" stroke-width="3"${dash}/></svg>`;
}
