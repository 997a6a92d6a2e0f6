// The run dashboard: every in situ view of one layer, live while the run trains and
// replayable afterwards with the step scrubber.
import { type FollowOptions, followRun, getFrames, getRun, HttpError, readFrames, type RunDetails } from "../api";
import { STATUS_COLORS } from "../colors";
import type { Frame } from "../frames";
import { DistributionView } from "../views/distribution";
import { type FilterNames, filterNumbers, inputNumbers } from "../views/filterNumbers";
import { drawHealth, healthStepAt, healthSummary } from "../views/health";
import { HeatmapView } from "../views/heatmap";
import { ImagesView } from "../views/images";
import { pruningLines } from "../views/pruning";
import { addRedundancy, RedundancyTimeline, redundancyRows, type RunRedundancy } from "../views/redundancy";
import { countDrops, divergence, dropMarks, runNote } from "../views/runNote";
import { followBox as followState, runLabel, showStatus } from "../views/runStatus";
import { ScalarsView } from "../views/scalars";
import { TrajectoryView } from "../views/trajectory";
import { WeightGridView } from "../views/weightGrid";

// play and pause drawn, not typed: "⏸" is missing from many fonts (an empty box in headless Chromium)
const PLAY_ICON = `<svg viewBox="0 0 10 10" width="12" height="12" aria-hidden="true"><path d="M2 1 L9 5 L2 9 Z" fill="currentColor"/></svg>`;
const PAUSE_ICON = `<svg viewBox="0 0 10 10" width="12" height="12" aria-hidden="true"><rect x="1.5" y="1" width="2.6" height="8" fill="currentColor"/><rect x="5.9" y="1" width="2.6" height="8" fill="currentColor"/></svg>`;
const PLAY_LABEL = "replay the recorded steps";
const PAUSE_LABEL = "pause the replay";

const STEP_KINDS = ["weight_grid", "distribution", "feature_maps", "correlation", "groups"];

/** How many filters a frame of one of the views holds (0: none it names). */
function filterCount(f: Frame): number {
  const p = f.payload;
  const array = f.kind === "weight_grid" ? p.weights : f.kind === "distribution" ? p.counts : f.kind === "correlation" ? p.matrix
    : f.kind === "feature_maps" ? p.images : null;
  if (array && Array.isArray(array.shape)) return Number(array.shape[0]) || 0;
  return f.kind === "trajectory" && Array.isArray(p.shape) ? Number(p.shape[0]) || 0 : 0;
}

/** How many input channels a weight grid or trajectory frame's layer has (0: none it names). */
function inputCount(f: Frame): number {
  const shape = f.kind === "weight_grid" ? f.payload.weights?.shape : f.kind === "trajectory" ? f.payload.shape : null;
  return Array.isArray(shape) && shape.length >= 2 ? Number(shape[1]) || 0 : 0;
}

const PANELS: [string, string, string][] = [
  ["weights", "Filter weights", "One window of kh×kw blocks per filter and input channel: filters along x, channels along y; with one input channel the filters wrap into rows from the top left. Blocks are raised up for positive and sunk for negative weights, red to blue (the key below). Drag to orbit, wheel to zoom, double-click to refit."],
  ["trajectory", "Weight trajectory", "The layer's weights over the steps, projected on three chosen weight dimensions or on the first three principal components (the note says which weights, or each component's share of the path's variance); axes x orange, y green, z blue; grey early, pink late. A pruning changes the weights' shape: the path starts again there, its first point ringed."],
  ["distribution", "Feature-map distributions", "Each filter's activations on the probe batch (or the training batch's first max_samples samples, 8 by default), normalised to [0, 1] by its own min and max, as a histogram line (counts on a square-root scale) coloured by its correlation group. Point at a line for its filter's real range, mean and spread."],
  ["correlation", "Filter correlation", "Pearson correlation between the filters' feature maps, filters ordered by group (their numbers along the edges); outlined squares are groups of similar filters, listed beneath; hatched rows are dead filters (constant maps). Point at a cell for its value. Under them, the layer's filters (solid) and redundant filters (dashed: its grouped filters beyond one per group) over the recorded steps; click there to go to a step."],
  ["images", "Feature maps", "The layer's output for one sample, one map per filter. Click a map to see it at full resolution."],
  ["health", "Gradient health", "Per layer and recorded step: healthy, vanishing, exploding, stalled or non-finite gradients; the white line is the gradient norm (log scale). Click the strip to go to that step."],
  ["scalars", "Scalars", "Values logged with monitor.log(...) and the learning rate; dashed pink lines are pruning events (listed beneath: which filters went, and why), dashed grey ones the steps where a stopped training was resumed."],
];

export function dashboardPage(root: HTMLElement, run: string, setConnection: (up: boolean) => void): () => void {
  root.innerHTML = `
    <section class="run-head">
      <div class="run-title"><a href="#/runs" class="muted">Runs</a> / <h1 id="run-name"></h1><span id="run-alias" class="muted" hidden></span>
        <span id="run-status" class="chip" hidden></span><span id="run-lost" class="lost-mark" hidden></span><span id="run-model" class="muted"></span></div>
      <div class="controls" hidden>
        <label>layer <select id="layer"></select></label>
        <button id="play" class="icon-button" title="${PLAY_LABEL}" aria-label="${PLAY_LABEL}">${PLAY_ICON}</button>
        <input id="scrubber" type="range" min="0" max="0" value="0" step="1" />
        <span class="step">step <b id="step-counter">0</b> / <span id="last-step">0</span></span>
        <label id="follow-label" class="follow" title="jump to new steps as they arrive"><input id="follow" type="checkbox" checked /> follow live</label>
      </div>
      <div id="run-note" class="muted"></div>
    </section>
    <div class="grid">${PANELS.map(([id, title, help]) => `
      <section class="panel ${["images", "health", "scalars"].includes(id) ? "wide" : ""}" id="view-${id}">
        <h2 title="${help}">${title} <span class="help" title="${help}">?</span>${id === "trajectory" ? `
          <span class="toggle"><label><input type="radio" name="proj" value="pca" checked /> PCA</label>
          <label><input type="radio" name="proj" value="dims" /> chosen dims</label></span>` : ""}</h2>
        <div class="body"></div></section>`).join("")}
    </div>`;
  const $ = <T extends HTMLElement>(sel: string) => root.querySelector<T>(sel)!;
  const body = (id: string) => $(`#view-${id} .body`);
  const weights = new WeightGridView(body("weights"));
  weights.renderer.domElement.classList.add("view-canvas");
  const traj = new TrajectoryView(body("trajectory"));
  traj.renderer.domElement.classList.add("view-canvas");
  const canvas = (id: string, cls = "view-canvas") => {
    const c = document.createElement("canvas");
    c.className = cls;
    body(id).appendChild(c);
    return c;
  };
  // (the distributions fill their grid row, beside the taller correlation panel: see .plot-box)
  const distBox = document.createElement("div");
  distBox.className = "plot-box";
  const distCaption = document.createElement("div");
  distCaption.className = "muted caption";
  body("distribution").append(distBox, distCaption);
  const distCanvas = distBox.appendChild(document.createElement("canvas"));
  distCanvas.className = "view-canvas";
  const distribution = new DistributionView(distCanvas, distCaption);
  const heatCaption = document.createElement("div");
  heatCaption.className = "muted caption";
  const heatLegend = document.createElement("div");
  heatLegend.className = "muted caption group-legend";
  const heatmap = new HeatmapView(canvas("correlation", "heat-canvas"), heatCaption, heatLegend);
  const redundancyTitle = document.createElement("div");
  redundancyTitle.className = "muted caption redundancy-title";
  redundancyTitle.textContent = "Filters over the steps, and redundant ones (in a group, beyond one per group); click for a step";
  const redundancyBox = document.createElement("div");
  redundancyBox.className = "redundancy-chart";
  const redundancyCaption = document.createElement("div");
  redundancyCaption.className = "muted caption redundancy-now";
  body("correlation").append(heatCaption, heatLegend, redundancyTitle, redundancyBox, redundancyCaption);
  const imgCaption = document.createElement("div");
  imgCaption.className = "muted caption";
  body("images").appendChild(imgCaption);
  const images = new ImagesView(canvas("images", "view-canvas grid-canvas"), canvas("images", "zoom-canvas"), imgCaption);
  const healthCanvas = canvas("health");
  const healthCaption = document.createElement("div");
  healthCaption.className = "muted caption health-now";
  body("health").appendChild(healthCaption);
  // (the scalars view rebuilds its own box: the prunings' lines sit beside it, not in it)
  const scalarsBox = document.createElement("div");
  const pruneCaption = document.createElement("div");
  pruneCaption.className = "muted caption prunings";
  body("scalars").append(scalarsBox, pruneCaption);
  const scalars = new ScalarsView(scalarsBox);
  // (read before any view draws, live and on replay: every view names filters by their original
  // numbers, which the prunings give)
  const prunings: Frame[] = [];
  /** The original numbers of the filters of ``f`` (null: its layer had lost none by its step). */
  const namesOf = (f: Frame | undefined): FilterNames | null => (f ? filterNumbers(prunings, f.layer, f.step, filterCount(f)) : null);
  /** The original numbers of the input channels of ``f`` (null: its layer had lost none by its
   * step, or the run's prunings do not say which). */
  const inputsOf = (f: Frame | undefined): FilterNames | null => (f ? inputNumbers(prunings, f.layer, f.step, inputCount(f)) : null);
  traj.numbering = namesOf;
  traj.inputNumbering = inputsOf;
  const writePrunings = () => {
    pruneCaption.replaceChildren(...pruningLines(prunings).map((text) => {
      const line = document.createElement("div");
      line.className = "pruning-line";
      line.textContent = `pruned at ${text}`;
      return line;
    }));
  };

  let details: RunDetails | null = null;
  let layer = "";
  let lastStep = 0;
  let current = 0;
  let follow = true; // (on a run that is not live: whether a resumed training's steps are followed)
  let status = "";
  const perStep = new Map<string, Frame>();
  const drops = new Map<string, number>(); // "dropped" frames: the count so far, by what dropped
  const health: Frame[] = [];
  const redundancy: RunRedundancy = new Map(); // every layer's filter counts by step, from its groups frames
  let pending = false;
  let gone = false; // (the page was left: a redraw or a fetch still in flight then draws nothing)
  // instrumentation for tests and benchmarks: time from a frame's creation to its drawing
  const arrived: number[] = [];
  const latencies: number[] = [];
  let firstDrawMs = 0;
  let stopPlay: (() => void) | null = null;
  let following: FollowOptions = {}; // (where the live stream takes over from the history: see init)

  const scrubber = $<HTMLInputElement>("#scrubber");
  const counter = $("#step-counter");
  const followBox = $<HTMLInputElement>("#follow");
  const layerSelect = $<HTMLSelectElement>("#layer");
  /** Move the scrubber to ``step``, as dragging it there does. */
  const goTo = (step: number) => {
    scrubber.value = String(step);
    scrubber.dispatchEvent(new Event("input"));
  };
  // a click on the redundancy timeline goes to the recording there
  const timeline = new RedundancyTimeline(redundancyBox, redundancyCaption, goTo);

  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      if (!gone) draw();
    });
  };

  function draw(): void {
    counter.textContent = String(current);
    const now = Date.now();
    for (const t of arrived.splice(0)) latencies.push(now - t * 1000);
    if (latencies.length > 5000) latencies.splice(0, latencies.length - 5000);
    $("#last-step").textContent = String(lastStep);
    scrubber.max = String(lastStep);
    scrubber.value = String(current);
    const grid = perStep.get("weight_grid");
    if (grid) weights.update(grid, namesOf(grid), inputsOf(grid));
    const dist = perStep.get("distribution"), corr = perStep.get("correlation"), maps = perStep.get("feature_maps");
    distribution.update(dist, perStep.get("groups"), namesOf(dist));
    heatmap.update(corr, perStep.get("groups"), namesOf(corr));
    timeline.update(redundancy.get(layer), current, lastStep);
    redundancyTitle.hidden = redundancyBox.hidden; // (no chart: its words say why)
    images.update(maps, namesOf(maps));
    traj.upTo = current;
    traj.redraw();
    drawHealth(healthCanvas, health, details?.layers ?? [], current, lastStep);
    const summary = healthSummary(health, details?.layers ?? [], current);
    healthCaption.replaceChildren(...summary.map(({ status, text }) => {
      const line = document.createElement("div");
      line.className = "health-line";
      line.style.borderLeftColor = STATUS_COLORS[status] ?? "#555";
      line.textContent = text;
      return line;
    }));
    scalars.current = current;
    scalars.draw();
    if (!firstDrawMs && details) firstDrawMs = performance.now();
  }

  async function loadStep(step: number): Promise<void> {
    const frames = await getFrames(run, { kind: STEP_KINDS, layer: [layer], end: step, latest: true });
    perStep.clear();
    for (const f of frames) perStep.set(f.kind, f);
    addRedundancy(redundancy, frames); // (the groups frame shown: the timeline has it, thinned or not)
    current = step;
    schedule();
  }

  async function loadLayer(): Promise<void> {
    const trajFrames = await getFrames(run, { kind: ["trajectory"], layer: [layer], maxPoints: 2000 });
    traj.setPoints(trajFrames);
    await loadStep(current);
  }

  async function init(): Promise<void> {
    details = await getRun(run);
    const label = runLabel(details);
    $("#run-name").textContent = label.text;
    $("#run-name").title = label.title;
    $("#run-alias").textContent = label.name ? `named ${label.name}` : "";
    $("#run-alias").title = label.title;
    $("#run-alias").hidden = !label.name;
    document.title = `${label.text} · convscope`;
    $(".controls").hidden = false;
    setStatus(details.status);
    $("#run-model").textContent = details.model ?? "";
    lastStep = details.last_step ?? 0;
    current = lastStep;
    layerSelect.innerHTML = details.layers.map((l) => `<option>${l}</option>`).join("");
    layer = details.layers[0] ?? "";
    // the run's own totals (one row of its state): a thinned timeline may miss a cause's last count
    for (const [sink, count] of Object.entries(details.dropped ?? {})) countDrops(drops, { sink, count });
    const { frames: history, cursor } = await readFrames(run, { kind: ["scalar", "scalars", "pruning", "gradient_health", "dropped", "run_meta", "groups"], maxPoints: 3000 });
    // The live stream takes over at the row this read stopped at: the server read the history
    // and its cursor in one snapshot, and the stream sends the rows stored after it (the frames
    // written while this page fetched the rest, then new ones), each once and none of the
    // history's (it joins at the run's newest row, past this read, and replays those between). So
    // every frame that accumulates (a pruning, a health check, a groups frame, a scalar, a drop
    // count) comes once, by construction; the step views' own reads below may overlap the
    // stream, but those keep one frame a step. (No cursor, from a server without one: live only.)
    if (cursor !== null) following = { after: cursor };
    scalars.add(history.filter((f) => f.kind !== "dropped" && f.kind !== "groups"));
    prunings.push(...history.filter((f) => f.kind === "pruning"));
    writePrunings();
    health.push(...history.filter((f) => f.kind === "gradient_health"));
    addRedundancy(redundancy, history);
    for (const f of history) if (f.kind === "dropped") countDrops(drops, f.payload);
    writeNote();
    await loadLayer();
  }

  function writeNote(): void {
    if (!details) return;
    const thinned = Object.values(details.thinned).reduce((a, b) => a + b, 0);
    $("#run-note").textContent = runNote(details.meta.config ?? {}, drops, thinned, scalars.resumes, divergence(health));
    const lost = dropMarks(drops).lost; // (as the Runs page marks it; the note says the deferred steps, quietly)
    const mark = $("#run-lost");
    mark.hidden = !lost;
    mark.textContent = lost?.mark ?? "";
    mark.title = lost?.title ?? "";
  }

  function setStatus(now: string): void {
    status = now;
    showStatus($("#run-status"), status);
    $("#run-status").hidden = false;
    showFollow();
  }

  /** "follow live" only where there is something to follow: a live run (again, when one resumes). */
  function showFollow(): void {
    const box = followState(status, follow);
    followBox.disabled = box.disabled;
    followBox.checked = box.checked;
    $("#follow-label").title = box.title;
    $("#follow-label").classList.toggle("disabled", box.disabled);
  }

  function onFrame(f: Frame): void {
    if (f.kind === "run_meta") {
      if (f.payload.graph && details && !details.meta.graph) details.meta.graph = f.payload.graph;
      if (f.payload.event === "resume") {
        scalars.add([f]);
        writeNote();
        schedule();
      }
      return;
    }
    if (details && f.layer && !details.layers.includes(f.layer)) {
      details.layers.push(f.layer);
      layerSelect.insertAdjacentHTML("beforeend", `<option>${f.layer}</option>`);
      if (!layer) layer = f.layer;
    }
    lastStep = Math.max(lastStep, f.step);
    arrived.push(f.wall_time);
    if (f.kind === "scalar" || f.kind === "scalars" || f.kind === "pruning") scalars.add([f]);
    if (f.kind === "pruning") {
      prunings.push(f);
      writePrunings();
    }
    if (f.kind === "dropped") {
      countDrops(drops, f.payload);
      writeNote();
    }
    if (f.kind === "gradient_health") {
      health.push(f);
      if (f.payload.status === "nonfinite") writeNote();
    }
    if (f.kind === "groups") addRedundancy(redundancy, [f]);
    if (f.layer === layer && f.kind === "trajectory") traj.add(f);
    // (the newest frame: a stream's catch-up may come after live frames of later steps)
    if (follow && f.layer === layer && STEP_KINDS.includes(f.kind) && f.step >= (perStep.get(f.kind)?.step ?? -1)) {
      perStep.set(f.kind, f);
    }
    if (follow) current = lastStep;
    schedule();
  }

  // a click on the gradient-health strip goes to that step (where a layer turned, say)
  healthCanvas.addEventListener("click", (e) => {
    if (!health.length) return;
    goTo(healthStepAt(e.offsetX, healthCanvas.clientWidth, Number(healthCanvas.dataset.first ?? 0), lastStep));
  });
  healthCanvas.style.cursor = "pointer";

  let debounce: number | undefined;
  scrubber.addEventListener("input", () => {
    const step = Number(scrubber.value);
    follow = step >= lastStep;
    showFollow();
    counter.textContent = String(step);
    clearTimeout(debounce);
    debounce = window.setTimeout(() => loadStep(step), 120);
  });
  followBox.addEventListener("change", () => {
    follow = followBox.checked;
    if (follow) loadStep(lastStep);
  });
  layerSelect.addEventListener("change", () => {
    layer = layerSelect.value;
    loadLayer();
  });
  root.querySelectorAll<HTMLInputElement>('input[name="proj"]').forEach((r) =>
    r.addEventListener("change", () => {
      traj.projection = r.value as "pca" | "dims";
      traj.redraw();
    }),
  );
  $("#play").addEventListener("click", async () => {
    if (stopPlay) return stopPlay();
    const r = await fetch(`api/runs/${encodeURIComponent(run)}/steps?kind=weight_grid&layer=${encodeURIComponent(layer)}${location.search ? "&" + location.search.slice(1) : ""}`);
    const steps: number[] = (await r.json()).steps;
    follow = false;
    showFollow();
    let i = 0;
    const timer = window.setInterval(() => {
      if (i >= steps.length) return stopPlay?.();
      loadStep(steps[i++]);
    }, 300);
    const play = $("#play");
    const showButton = (icon: string, label: string) => {
      play.innerHTML = icon;
      play.title = label;
      play.setAttribute("aria-label", label);
    };
    showButton(PAUSE_ICON, PAUSE_LABEL);
    stopPlay = () => {
      clearInterval(timer);
      stopPlay = null;
      showButton(PLAY_ICON, PLAY_LABEL);
    };
  });

  let stopFollow: () => void = () => {};
  init()
    .then(() => {
      stopFollow = followRun(run, onFrame, setStatus, setConnection, following);
    })
    .catch((e) => {
      // (an error status is the server's answer: the connection is up, whatever the run)
      if (e instanceof HttpError) setConnection(true);
      if (e instanceof HttpError && e.status === 404 && !details) return showMissing();
      const error = document.createElement("p");
      error.className = "error";
      error.textContent = String(e);
      root.querySelector(".grid")!.replaceChildren(error);
    });

  /** No such run here: say so, and the way back, instead of an empty dashboard. */
  function showMissing(): void {
    root.innerHTML = `<section class="missing-run"><h1>No run named “<span class="run-id"></span>”</h1>
      <p>There is no run named <code class="run-id"></code> in this log directory.
        <a href="#/runs">Back to the Runs page</a>, which lists the runs it has.</p></section>`;
    root.querySelectorAll(".run-id").forEach((el) => (el.textContent = run));
    document.title = "no such run · convscope";
  }
  (window as any).convscopeDashboard = {
    images, weights, traj, scalars, heatmap, distribution, timeline, latencies,
    /** each layer's [step, filters, redundant] rows, as the redundancy timeline has them */
    redundancy: () => redundancyRows(redundancy),
    /** the gradient-health checks and prunings the page holds, as [layer, step] (each once: none counted twice) */
    health: () => health.map((f) => [f.layer, f.step]),
    prunings: () => prunings.map((f) => [f.layer, f.step]),
    get current() { return current; },
    get firstDrawMs() { return firstDrawMs; },
  };
  return () => {
    gone = true;
    stopFollow();
    stopPlay?.();
    weights.dispose();
    traj.dispose();
  };
}
