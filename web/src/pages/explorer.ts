// The model explorer (NeuralVis): models and inputs on the left (upload, sketch, bundled samples,
// adversarial generation), the model's 3-D structure and layer list, the opened layer's maps
// (click to freeze filters), the prediction, critical features and the comparison of two inputs.
import { drawDivergence, drawPrediction, renderDivergenceLegend } from "../views/explorer/charts";
import {
  ApiError,
  explorerApi as api,
  fetchImage,
  reason,
  type Comparison,
  type InputInfo,
  type LayerOutput,
  type Maps,
  type ModelDetails,
  type Outputs,
  type SessionInfo,
} from "../views/explorer/client";
import {
  collapseAround, comparePair, defaultCollapsed, expand, formatShape, frozenNote, inputNames, labelFor, modelSummary, toggleFrozen, visibleUnits,
  type Unit,
} from "../views/explorer/logic";
import { collapseTarget, structureButtons } from "../views/explorer/keys";
import { ColorBar, drawStrip, MapGrid, type Palette } from "../views/explorer/maps";
import { InputImages } from "../views/explorer/inputImages";
import { drawOverlay } from "../views/explorer/saliency";
import { Sketchpad } from "../views/explorer/sketchpad";
import { StructureView } from "../views/explorer/structure3d";

interface ExplorerProbe {
  lastDrawMs: number;
  structureMs: number;
  draws: number;
  drawnInput: string | null;
  state: () => unknown;
  /** Where a layer's block is drawn in the 3-D structure (css px from the canvas's corner). */
  blockAt: (id: string) => { x: number; y: number } | null;
  /** The screen box around a layer's block (css px from the canvas's corner). */
  blockBox: (id: string) => { left: number; top: number; right: number; bottom: number } | null;
}

declare global {
  interface Window {
    convscopeExplorer?: ExplorerProbe;
  }
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function explorerPage(root: HTMLElement, setConnection: (up: boolean) => void): () => void {
  root.innerHTML = `
    <section class="page-head explorer-head"><h1>Model explorer</h1>
      <span class="muted">Open a trained model, feed it inputs, see every layer. <a href="#/runs">Runs</a> shows training runs.</span></section>
    <div class="explorer">
      <aside class="ops">
        <section class="panel" id="models-panel"><h2>Models</h2>
          <ul id="model-list" class="pick-list"></ul>
          <div class="row"><select id="zoo-name" aria-label="bundled model"></select><button id="add-zoo">Add bundled</button></div>
          <label class="file-button">Upload model file<input type="file" id="model-file" /></label>
          <div id="model-message" class="message"></div>
        </section>
        <section class="panel" id="inputs-panel"><h2>Inputs</h2>
          <ul id="input-list" class="pick-list inputs"></ul>
          <div class="row"><select id="sample-set" aria-label="bundled data set"></select>
            <input id="sample-index" type="number" min="0" value="0" aria-label="sample index" />
            <button id="add-sample">Add sample</button></div>
          <label class="file-button">Upload image<input type="file" id="input-file" accept="image/*" /></label>
          <div id="input-message" class="message"></div>
          <h3>Sketchpad: draw an input with the mouse</h3>
          <canvas id="sketchpad" class="sketchpad"></canvas>
          <div class="row"><button id="sketch-predict">Predict sketch</button><button id="sketch-clear">Clear</button></div>
        </section>
        <section class="panel" id="attack-panel"><h2>Adversarial sample</h2>
          <div class="row"><select id="attack" aria-label="attack"></select></div>
          <div id="attack-about" class="muted small"></div>
          <div id="attack-params" class="params"></div>
          <div id="attack-help" class="muted small"></div>
          <div class="row"><label>target <input id="attack-target" type="number" min="0" placeholder="none" /></label>
            <button id="attack-run">Generate</button></div>
          <div id="attack-message" class="message"></div>
        </section>
      </aside>
      <div class="detail">
        <section class="panel" id="structure-panel">
          <h2>Structure <span id="model-title" class="muted"></span>
            <span class="toggle"><button id="spin">spin</button><button id="expand-all" disabled>expand all</button><button id="collapse-auto" disabled>collapse</button></span></h2>
          <div id="structure3d" class="structure3d"></div>
          <div id="structure-legend"></div>
          <div class="table-wrap"><table class="layers" id="layer-table"><thead><tr><th>layer</th><th>kind</th><th>output shape</th><th class="num">params</th><th>outputs</th></tr></thead>
            <tbody></tbody></table></div>
        </section>
        <div class="two">
          <section class="panel" id="prediction-panel"><h2>Prediction</h2>
            <div id="prediction-text" class="big"></div><canvas id="prediction-chart" class="view-canvas"></canvas>
            <div id="prediction-key" class="muted small"></div></section>
          <section class="panel" id="saliency-panel"><h2>Input and critical features</h2>
            <div class="row"><select id="saliency-method" aria-label="saliency method"></select><button id="saliency-run">Highlight</button>
              <label><input type="checkbox" id="saliency-show" checked /> overlay</label></div>
            <canvas id="saliency-canvas" class="saliency"></canvas>
            <div id="saliency-text" class="muted small"></div>
            <ol id="fit-steps" class="steps muted small"></ol></section>
        </div>
        <section class="panel" id="layer-panel"><h2>Layer <span id="layer-name"></span> <span id="layer-shape" class="muted"></span></h2>
          <div id="layer-stats" class="muted small"></div>
          <div class="row small"><span id="hover-value" class="hover-value">hover a map to read its values; click maps (or units) to freeze them</span>
            <span id="layer-colorbar" class="colorbar-slot"></span></div>
          <canvas id="layer-maps" class="maps-canvas"></canvas>
          <div class="frozen"><b>Frozen filters:</b> <span id="frozen-list">none</span> <button id="freeze-clear" disabled title="no filter is frozen">Clear</button></div>
          <div id="layer-message" class="message"></div>
        </section>
        <section class="panel" id="compare-panel"><h2>Compare two inputs <span class="toggle"><button id="compare-expand">expand</button></span></h2>
          <div class="row"><label>A <select id="compare-a"></select></label><label>B <select id="compare-b"></select></label>
            <button id="compare-run">Compare</button></div>
          <details><summary>layers to show (<span id="compare-count">0</span>)</summary><div id="compare-layers" class="checks"></div></details>
          <div id="compare-summary" class="small"></div>
          <div class="chart-box"><canvas id="divergence-chart" class="view-canvas"></canvas><div id="divergence-tip" class="chart-tip" hidden></div></div>
          <div id="divergence-legend" class="chart-legend small"></div>
          <div id="compare-maps"></div>
        </section>
      </div>
    </div>`;
  const $ = <T extends HTMLElement = HTMLElement>(sel: string) => root.querySelector<T>(sel)!;
  // (an input's image, fetched once for its thumbnail, the input panel and the 3-D view's input slab)
  const images = new InputImages(fetchImage);
  const structure = new StructureView($("#structure3d"));
  structure.loadImage = (url) => images.image(url);
  structure.renderer.domElement.classList.add("view-canvas");
  $("#structure-legend").replaceWith(structure.legend);
  structure.legend.id = "structure-legend";
  const layerGrid = new MapGrid($<HTMLCanvasElement>("#layer-maps"), { minSide: 28, maxCell: 6 });
  layerGrid.bar = new ColorBar();
  $("#layer-colorbar").appendChild(layerGrid.bar.el);
  const sketch = new Sketchpad($<HTMLCanvasElement>("#sketchpad"));
  const probe: ExplorerProbe = {
    lastDrawMs: 0, structureMs: 0, draws: 0, drawnInput: null, state: () => state,
    blockAt: (id) => structure.screenPosition(id),
    blockBox: (id) => structure.screenBox(id),
  };
  window.convscopeExplorer = probe;

  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const state = {
    session: null as SessionInfo | null,
    model: null as ModelDetails | null,
    input: params.get("input") as string | null,
    collapsed: new Set<string>(),
    selected: null as string | null,
    outputs: null as Outputs | null,
    layer: null as LayerOutput | null,
    freeze: {} as Record<string, number[]>,
    compareLayers: new Set<string>(),
    comparison: null as Comparison | null,
    saliency: null as Awaited<ReturnType<typeof api.saliency>> | null,
    image: null as HTMLImageElement | null,
    token: 0,
  };
  let disposed = false;

  const message = (id: string, text: string, error = false) => {
    const el = $(id);
    el.textContent = text;
    el.className = `message ${error ? "error" : "ok"}`;
  };
  /**
   * Run what a person asked for; a failure is said in the panel \`where\`, in the server's words
   * (not only in the console), and when what it needed is gone (removed in another tab, say) the
   * page catches up with the session. An action of the person begun after a failure was said clears
   * it when it succeeds (one begun before, still on its way, does not; nor does work the page does
   * on its own, quiet, such as drawing the input after catching up).
   */
  let actions = 0;
  const failedAt = new Map<string, number>();
  async function attempt(where: string, action: () => Promise<unknown>, quiet = false): Promise<void> {
    const begun = ++actions;
    try {
      await action();
      const failed = failedAt.get(where);
      if (!quiet && failed !== undefined && failed < begun) {
        failedAt.delete(where);
        message(where, "");
      }
    } catch (e) {
      failedAt.set(where, ++actions);
      message(where, reason(e), true);
      if (e instanceof ApiError && e.status === 404) await catchUp(where);
    }
  }

  /** Show what the session holds now: lists refreshed, a model or input that is gone replaced. */
  async function catchUp(where: string): Promise<void> {
    try {
      const s = await refreshSession();
      if (state.model && !s.models.some((m) => m.id === state.model!.id)) {
        if (s.models.length) await selectModel(s.models[s.models.length - 1].id);
        else showNoModel();
      } else if (state.input && !s.inputs.some((i) => i.id === state.input)) {
        if (s.inputs.length) await selectInput(s.inputs[0].id);
        else showNoInput();
      }
    } catch (e) {
      message(where, reason(e), true);
    }
  }

  const updateHash = () => {
    const p = new URLSearchParams();
    if (state.model) p.set("model", state.model.id);
    if (state.input) p.set("input", state.input);
    history.replaceState(null, "", `#/explore?${p}`);
  };

  // --- session, models, inputs -------------------------------------------------------------------
  async function refreshSession(): Promise<SessionInfo> {
    const s = await api.session();
    state.session = s;
    setConnection(true);
    // the images of inputs and models that are gone are dropped (removed here or elsewhere)
    images.keepOnly(new Set(s.inputs.flatMap((i) => [api.imageUrl(i.id), ...s.models.map((m) => api.imageUrl(i.id, m.id))])));
    const zoo = $<HTMLSelectElement>("#zoo-name");
    if (!zoo.options.length) zoo.innerHTML = s.zoo.map((z) => `<option>${esc(z)}</option>`).join("");
    const attack = $<HTMLSelectElement>("#attack");
    if (!attack.options.length) {
      attack.innerHTML = Object.keys(s.attacks).map((a) => `<option>${esc(a)}</option>`).join("");
      renderAttackParams();
    }
    const sal = $<HTMLSelectElement>("#saliency-method");
    if (!sal.options.length) sal.innerHTML = s.saliency_methods.map((m) => `<option>${esc(m)}</option>`).join("");
    renderModels();
    renderInputs();
    return s;
  }

  function renderModels(): void {
    const list = $("#model-list");
    const models = state.session?.models ?? [];
    list.innerHTML = models.length ? "" : `<li class="muted">no model yet: add a bundled one or upload a file</li>`;
    for (const m of models) {
      const li = document.createElement("li");
      li.className = `model-item${state.model?.id === m.id ? " selected" : ""}`;
      li.dataset.model = m.id;
      li.innerHTML = `<b></b> <span class="muted"></span> <button class="remove" title="remove">×</button>`;
      li.querySelector("b")!.textContent = m.name;
      li.querySelector("span")!.textContent = modelSummary(m);
      li.title = m.source;
      li.addEventListener("click", () => void attempt("#model-message", () => selectModel(m.id)));
      li.querySelector("button")!.addEventListener("click", (e) => {
        e.stopPropagation();
        void attempt("#model-message", async () => {
          await api.removeModel(m.id);
          const shown = state.model?.id === m.id;
          if (shown) state.model = null;
          const s = await refreshSession();
          // the page must not go on showing a model that is gone: the last one left, or nothing
          if (shown && s.models.length) await selectModel(s.models[s.models.length - 1].id);
          else if (shown) showNoModel();
        });
      });
      list.appendChild(li);
    }
  }

  /** An input as the list names it (so too the compare menus and the messages). */
  function inputLabel(id: string, fallback = id): string {
    return inputNames(state.session?.inputs ?? []).get(id) ?? fallback;
  }

  function renderInputs(): void {
    const list = $("#input-list");
    const inputs = state.session?.inputs ?? [];
    const scrolled = list.scrollTop;
    list.innerHTML = inputs.length ? "" : `<li class="muted">no input yet</li>`;
    const names = inputNames(inputs);
    for (const i of inputs) {
      const name = names.get(i.id) ?? i.name;
      const li = document.createElement("li");
      li.className = `input-item${state.input === i.id ? " selected" : ""}`;
      li.dataset.input = i.id;
      const img = document.createElement("img");
      img.className = "thumb";
      images.blobUrl(api.imageUrl(i.id, state.model?.id)).then((url) => (img.src = url), () => {});
      img.alt = name;
      const text = document.createElement("span");
      text.className = "input-name";
      text.textContent = name;
      text.title = name; // (the whole name, where the list cuts it)
      li.append(img, text);
      if (i.adversarial) {
        const a = i.adversarial;
        const info = document.createElement("span");
        info.className = "adv-info small";
        info.textContent = `${a.attack}: ${a.original_name} → ${a.prediction_name}${a.success ? "" : " (no change)"}, L2 ${a.l2.toFixed(3)}, L∞ ${a.linf.toFixed(3)}` +
          frozenNote(a);
        li.append(info);
      } else if (i.label !== null) {
        const info = document.createElement("span");
        info.className = "muted small";
        info.textContent = `label ${i.label}`;
        li.append(info);
      }
      const rm = document.createElement("button");
      rm.className = "remove";
      rm.title = `remove ${name}`;
      rm.setAttribute("aria-label", `remove ${name}`);
      rm.textContent = "×";
      rm.addEventListener("click", (e) => {
        e.stopPropagation();
        void attempt("#input-message", async () => {
          await api.removeInput(i.id);
          const shown = state.input === i.id;
          if (shown) state.input = null;
          const s = await refreshSession();
          // the page must not go on showing an input that is gone: the first one left, or nothing
          if (shown && s.inputs.length) await selectInput(s.inputs[0].id);
          else if (shown) showNoInput();
        });
      });
      li.append(rm);
      li.addEventListener("click", () => void attempt("#input-message", () => selectInput(i.id)));
      list.appendChild(li);
    }
    // rebuilding the list scrolled it back to its top: keep where it was, and show the selected one
    list.scrollTop = scrolled;
    const chosen = list.querySelector<HTMLElement>("li.selected");
    if (chosen) reveal(list, chosen);
    const a = $<HTMLSelectElement>("#compare-a"), b = $<HTMLSelectElement>("#compare-b");
    const [nextA, nextB] = comparePair(inputs.map((i) => i.id), a.value, b.value);
    for (const s of [a, b]) s.innerHTML = inputs.map((i) => `<option value="${esc(i.id)}">${esc(names.get(i.id) ?? i.name)}</option>`).join("");
    a.value = nextA;
    b.value = nextB;
  }

  /** Scroll a list (only the list, not the page) so that one of its items is in view. */
  function reveal(list: HTMLElement, item: HTMLElement): void {
    const box = list.getBoundingClientRect(), r = item.getBoundingClientRect();
    if (r.top < box.top) list.scrollTop -= box.top - r.top;
    else if (r.bottom > box.bottom) list.scrollTop += r.bottom - box.bottom;
  }

  async function selectModel(id: string): Promise<void> {
    const details = await api.model(id);
    state.model = details;
    state.freeze = details.freeze;
    state.collapsed = defaultCollapsed(details.graph);
    state.selected = null;
    state.layer = null;
    state.outputs = null;
    state.comparison = null;
    state.saliency = null;
    $("#model-title").textContent = `${details.name} · ${details.format} · ${details.layers} layers · input ${formatShape(details.input_spec.shape)}`;
    const sets = $<HTMLSelectElement>("#sample-set");
    sets.innerHTML = details.sample_sets.map((s) => `<option>${esc(s)}</option>`).join("");
    const checks = $("#compare-layers");
    const convs = details.graph.layers.filter((l) => details.observable.includes(l.id) && ["conv", "dense"].includes(l.category));
    state.compareLayers = new Set(convs.slice(0, 3).map((l) => l.id));
    checks.innerHTML = details.observable
      .map((l) => `<label><input type="checkbox" value="${esc(l)}" ${state.compareLayers.has(l) ? "checked" : ""}/> ${esc(l)}</label>`)
      .join("");
    $("#compare-count").textContent = String(state.compareLayers.size);
    renderModels();
    renderInputs();
    const t0 = performance.now();
    renderStructure(false);
    probe.structureMs = performance.now() - t0;
    drawPrediction($<HTMLCanvasElement>("#prediction-chart"), null);
    drawDivergence($<HTMLCanvasElement>("#divergence-chart"), null, undefined, $("#divergence-tip"));
    renderDivergenceLegend($("#divergence-legend"), null);
    $("#compare-maps").innerHTML = "";
    renderFrozen();
    updateHash();
    const inputs = state.session?.inputs ?? [];
    const keep = inputs.find((i) => i.id === state.input);
    if (keep) await selectInput(keep.id);
    else if (inputs.length) await selectInput(inputs[0].id);
  }

  /** Blank the views of the input (its layer, prediction and image) when none is selected. */
  function showNoInput(): void {
    state.token++; // answers still on their way are for what was shown before
    state.input = null;
    state.outputs = null;
    state.layer = null;
    state.saliency = null;
    state.image = null;
    renderStructure(true);
    renderLayer();
    renderPrediction();
    drawOverlay($<HTMLCanvasElement>("#saliency-canvas"), null, null);
    $("#saliency-text").textContent = "";
    $("#fit-steps").innerHTML = "";
    renderInputs();
    updateHash();
  }

  /** Blank every view of the model when the last one is removed. */
  function showNoModel(): void {
    state.model = null;
    state.selected = null;
    state.freeze = {};
    state.comparison = null;
    $("#model-title").textContent = "";
    structure.build([], null, new Map());
    $("#layer-table tbody").innerHTML = "";
    renderButtons();
    drawDivergence($<HTMLCanvasElement>("#divergence-chart"), null, undefined, $("#divergence-tip"));
    renderDivergenceLegend($("#divergence-legend"), null);
    $("#compare-maps").innerHTML = "";
    $("#compare-summary").textContent = "";
    renderFrozen();
    showNoInput();
  }

  // --- structure -----------------------------------------------------------------------------------
  function units(): Unit[] {
    return state.model ? visibleUnits(state.model.graph, state.collapsed) : [];
  }

  function mapsByLayer(): Map<string, Maps> {
    return new Map((state.outputs?.layers ?? []).map((l) => [l.layer, l.maps]));
  }

  function renderStructure(keepCamera: boolean): void {
    if (!state.model) return;
    const list = units();
    const openedMaps = state.layer && state.layer.layer === state.selected ? state.layer.maps : null;
    // (the input drawn, whose outputs the blocks show: its image, as the model sees it, on the input slab)
    const inputImage = state.outputs ? api.imageUrl(state.outputs.input, state.outputs.model) : null;
    structure.build(list, state.selected, mapsByLayer(), { openedMaps, frozen: state.freeze[state.selected ?? ""] ?? [], keepCamera, inputImage });
    renderLayerTable(list);
    renderButtons();
  }

  /** "expand all" and "collapse" only where they have something to do; their titles say why not. */
  function renderButtons(): void {
    const b = state.model ? structureButtons(state.model.graph, state.collapsed) : null;
    for (const [sel, s] of [["#expand-all", b?.expandAll], ["#collapse-auto", b?.collapse]] as const) {
      const el = $<HTMLButtonElement>(sel);
      el.disabled = !s || s.disabled;
      el.title = s?.title ?? "no model is open";
    }
  }

  function renderLayerTable(list: Unit[]): void {
    const model = state.model!;
    const byId = new Map(model.graph.layers.map((l) => [l.id, l]));
    const tbody = $("#layer-table tbody");
    tbody.innerHTML = "";
    const maps = mapsByLayer();
    for (const u of list) {
      const tr = document.createElement("tr");
      tr.className = `layer-row${u.container ? " container" : ""}${u.id === state.selected ? " selected" : ""}`;
      tr.dataset.layer = u.id;
      const layer = byId.get(u.id);
      const params = u.container ? u.layers.reduce((s, id) => s + (byId.get(id)?.params ?? 0), 0) : layer?.params ?? 0;
      tr.innerHTML = `<td class="layer-name" style="padding-left:${8 + u.depth * 14}px"></td><td class="layer-kind"></td>
        <td class="layer-shape"></td><td class="num">${params.toLocaleString()}</td><td class="layer-out"></td>`;
      const name = tr.querySelector(".layer-name")!;
      if (u.container) {
        name.textContent = `▸ ${u.id}`;
        tr.title = `${u.kind} of ${u.layers.length} layers; click to expand`;
      } else {
        name.textContent = u.id;
        const parent = layer?.parent ?? null;
        if (parent) {
          const b = document.createElement("button");
          b.className = "collapse";
          b.textContent = "⊟";
          b.title = `collapse ${parent}`;
          b.addEventListener("click", (e) => {
            e.stopPropagation();
            state.collapsed = collapseAround(model.graph, state.collapsed, parent);
            renderStructure(true);
          });
          name.prepend(b);
        }
      }
      tr.querySelector(".layer-kind")!.textContent = u.container ? `${u.kind} (${u.layers.length})` : u.kind;
      tr.querySelector(".layer-shape")!.textContent = formatShape(u.shape);
      const m = maps.get(u.layers[u.layers.length - 1]);
      if (m && model.observable.includes(u.layers[u.layers.length - 1])) {
        const c = document.createElement("canvas");
        c.className = "strip";
        tr.querySelector(".layer-out")!.appendChild(c);
        drawStrip(c, m, state.freeze[u.layers[u.layers.length - 1]] ?? []);
      }
      tr.addEventListener("click", () => pickUnit(u));
      tbody.appendChild(tr);
    }
  }

  function pickUnit(u: Unit): void {
    if (!state.model) return;
    if (u.container) {
      state.collapsed = expand(state.model.graph, state.collapsed, u.id);
      renderStructure(true);
      return;
    }
    void attempt("#layer-message", () => selectLayer(u.id));
  }
  structure.onPick = pickUnit;

  // --- inputs and layers ---------------------------------------------------------------------------
  async function selectInput(id: string): Promise<void> {
    if (!state.model) {
      state.input = id;
      renderInputs();
      return;
    }
    const t0 = performance.now();
    const token = ++state.token;
    state.input = id;
    renderInputs();
    updateHash();
    const model = state.model.id;
    const outputs = await api.outputs(model, id, { maxSize: 32, maxMaps: 8 });
    if (token !== state.token || disposed) return;
    state.outputs = outputs;
    if (state.selected === null) {
      const first = state.model.graph.layers.find((l) => state.model!.observable.includes(l.id) && l.category === "conv") ??
        state.model.graph.layers.find((l) => state.model!.observable.includes(l.id));
      state.selected = first?.id ?? null;
    }
    state.layer = state.selected ? await api.outputs(model, id, { layer: [state.selected], maxSize: 64, maxMaps: 4096 }).then((o) => o.layers[0]) : null;
    if (token !== state.token || disposed) return;
    renderStructure(true);
    renderLayer();
    renderPrediction();
    probe.lastDrawMs = performance.now() - t0;
    probe.draws++;
    probe.drawnInput = id;
    document.body.dataset.drawn = `${model}:${id}:${probe.draws}`;
    void attempt("#input-message", () => renderInputImage(token), true);
  }

  async function renderInputImage(token: number): Promise<void> {
    if (!state.model || !state.input) return;
    let img: HTMLImageElement, fit: { steps: string[] };
    try {
      [img, fit] = await Promise.all([images.image(api.imageUrl(state.input, state.model.id)), api.fit(state.model.id, state.input)]);
    } catch (e) {
      if (token !== state.token || disposed) return; // (for an input no longer shown: removed, say)
      throw e;
    }
    if (token !== state.token || disposed) return;
    state.image = img;
    $("#fit-steps").innerHTML = fit.steps.map((s) => `<li>${esc(s)}</li>`).join("");
    if (state.saliency && $<HTMLInputElement>("#saliency-show").checked) await runSaliency();
    else drawOverlay($<HTMLCanvasElement>("#saliency-canvas"), img, null);
  }

  async function selectLayer(id: string): Promise<void> {
    if (!state.model || !state.input) return;
    state.selected = id;
    state.layer = (await api.outputs(state.model.id, state.input, { layer: [id], maxSize: 64, maxMaps: 4096 })).layers[0];
    renderStructure(true);
    renderLayer();
  }

  function renderLayer(): void {
    const l = state.layer;
    $("#layer-name").textContent = l ? l.layer : "";
    $("#layer-shape").textContent = l ? `${l.kind} · output ${formatShape(l.shape)} · ` + (l.maps.units != null ? `${l.maps.units} units` : `${l.maps.total} maps`) : "";
    if (!l) {
      $("#layer-stats").textContent = "";
      layerGrid.clear();
      return;
    }
    const s = l.stats;
    const f = (v: number | null) => (v === null ? "-" : v.toPrecision(4));
    $("#layer-stats").textContent = `min ${f(s.min)} · max ${f(s.max)} · mean ${f(s.mean)} · std ${f(s.std)} · zeros ${(s.zeros * 100).toFixed(1)}%` +
      (l.maps.count < l.maps.total ? ` · first ${l.maps.count} maps shown` : "") +
      // (a dense layer's units are laid out as one square, not a map shrunk)
      (l.maps.units == null && l.maps.width < (l.shape[l.shape.length - 1] ?? 0) ? ` · maps shrunk to ${l.maps.width}×${l.maps.height}` : "");
    layerGrid.draw(l.maps, state.freeze[l.layer] ?? []);
  }
  layerGrid.onHover = (t) => ($("#hover-value").textContent = t || "hover a map to read its values; click maps (or units) to freeze them");
  layerGrid.onClick = (f) => {
    if (!state.layer) return;
    const layer = state.layer.layer;
    void attempt("#layer-message", () => applyFreeze(toggleFrozen(state.freeze, layer, f)));
  };

  async function applyFreeze(freeze: Record<string, number[]>): Promise<void> {
    if (!state.model) return;
    state.freeze = await api.setFreeze(state.model.id, freeze);
    renderFrozen();
    if (state.input) await selectInput(state.input);
  }

  function renderFrozen(): void {
    const entries = Object.entries(state.freeze);
    $("#frozen-list").textContent = entries.length ? entries.map(([l, f]) => `${l}: ${f.join(", ")}`).join("; ") : "none";
    const clear = $<HTMLButtonElement>("#freeze-clear");
    clear.disabled = !entries.length;
    clear.title = entries.length ? "unfreeze every filter of this model" : "no filter is frozen";
  }

  function renderPrediction(): void {
    const p = state.outputs?.prediction ?? null;
    const input = state.session?.inputs.find((i) => i.id === state.input);
    $("#prediction-text").textContent = p ? `predicted ${p.predicted_name} (${(p.top[0].probability * 100).toFixed(1)}%)` : "";
    // (the input's label marked where it names one of this model's classes, and said: a green bar was not)
    const label = p && state.model ? labelFor(input, state.model.input_spec.shape) : null;
    const name = label === null ? "" : state.model?.input_spec.class_names?.[label] ?? String(label);
    drawPrediction($<HTMLCanvasElement>("#prediction-chart"), p, label);
    $("#prediction-key").textContent = !p || label === null ? "" : label === p.predicted ? `the input's label is ${name}: predicted right`
      : p.top.slice(0, 10).some((r) => r.index === label) ? `green: the input's label (${name})` : `the input's label, ${name}, is not among these`;
  }

  // --- saliency --------------------------------------------------------------------------------------
  async function runSaliency(): Promise<void> {
    if (!state.model || !state.input) return;
    const method = $<HTMLSelectElement>("#saliency-method").value;
    $("#saliency-text").textContent = `computing ${method} …`;
    try {
      state.saliency = await api.saliency(state.model.id, state.input, method);
      const shown = drawOverlay($<HTMLCanvasElement>("#saliency-canvas"), state.image, $<HTMLInputElement>("#saliency-show").checked ? state.saliency : null);
      $("#saliency-text").textContent = `${method}${state.saliency.layer ? ` at ${state.saliency.layer}` : ""} for class ${state.saliency.target_name}: ${shown} pixels carry evidence`;
      $("#saliency-canvas").dataset.method = method;
    } catch (e) {
      $("#saliency-text").textContent = reason(e);
    }
  }

  // --- comparison ------------------------------------------------------------------------------------
  async function runCompare(): Promise<void> {
    if (!state.model) return;
    const a = $<HTMLSelectElement>("#compare-a").value, b = $<HTMLSelectElement>("#compare-b").value;
    $("#compare-summary").textContent = "comparing …";
    try {
      const c = await api.compare(state.model.id, a, b, [...state.compareLayers]);
      state.comparison = c;
      const pa = c.prediction_a.predicted_name, pb = c.prediction_b.predicted_name;
      $("#compare-summary").textContent =
        `A predicted ${pa}, B predicted ${pb}. ` + (c.diverges_at ? `They part ways at ${c.diverges_at} (relative change ≥ ${c.threshold}).` : "They never part ways.");
      drawDivergence($<HTMLCanvasElement>("#divergence-chart"), c, (layer) => {
        state.compareLayers.add(layer);
        syncCompareChecks();
        void runCompare();
      }, $("#divergence-tip"));
      renderDivergenceLegend($("#divergence-legend"), c);
      const box = $("#compare-maps");
      box.innerHTML = "";
      for (const m of c.maps) {
        const d = c.layers.find((l) => l.layer === m.layer);
        const row = document.createElement("div");
        row.className = "compare-row";
        row.dataset.layer = m.layer;
        row.innerHTML = `<h3></h3><div class="triple"><div><div class="map-head"><span class="muted small">A</span></div><canvas></canvas></div>
          <div><div class="map-head"><span class="muted small">B</span></div><canvas></canvas></div>
          <div class="diff"><div class="map-head"><span class="muted small">B − A</span></div><canvas></canvas></div></div>`;
        row.querySelector("h3")!.textContent = `${m.layer} ${formatShape(m.shape)} · relative change ${d?.relative === null || d === undefined ? "∞" : d.relative.toPrecision(3)}`;
        box.appendChild(row);
        const heads = [...row.querySelectorAll<HTMLElement>(".map-head")];
        [...row.querySelectorAll("canvas")].forEach((canvas, k) => {
          const grid = new MapGrid(canvas, { minSide: 20, maxCell: 3 });
          grid.bar = new ColorBar(true); // (the range of its maps, a hovered map's own)
          heads[k].appendChild(grid.bar.el);
          const [maps, palette]: [Maps, Palette] = k === 0 ? [m.a, "grey"] : k === 1 ? [m.b, "grey"] : [m.diff, "diverging"];
          grid.draw(maps, [], palette);
        });
      }
    } catch (e) {
      $("#compare-summary").textContent = reason(e);
    }
  }

  function syncCompareChecks(): void {
    root.querySelectorAll<HTMLInputElement>("#compare-layers input").forEach((c) => (c.checked = state.compareLayers.has(c.value)));
    $("#compare-count").textContent = String(state.compareLayers.size);
  }

  // --- adversarial -----------------------------------------------------------------------------------
  function renderAttackParams(): void {
    const name = $<HTMLSelectElement>("#attack").value;
    const spec = state.session?.attacks[name];
    if (!spec) return;
    $("#attack-about").textContent = spec.about + (spec.targeted ? "" : " (untargeted only)");
    // (each parameter with what it does: its tooltip, and a line under them; "th" and "es" said nothing)
    const help = (k: string) => spec.params?.[k] ?? "";
    $("#attack-params").innerHTML = Object.entries(spec.defaults)
      .map(([k, v]) => `<label title="${esc(help(k))}">${esc(k)} <input data-param="${esc(k)}" type="number" step="any" value="${v ?? ""}" placeholder="auto"
        style="width: calc(${Math.max(4, String(v ?? "").length)}ch + 36px)" /></label>`)
      .join("");
    $("#attack-help").innerHTML = Object.keys(spec.defaults).filter(help).map((k) => `<div><b>${esc(k)}</b>: ${esc(help(k))}</div>`).join("");
    $<HTMLInputElement>("#attack-target").disabled = !spec.targeted;
  }

  async function runAttack(): Promise<void> {
    if (!state.model || !state.input) return message("#attack-message", "select a model and an input first", true);
    const attack = $<HTMLSelectElement>("#attack").value;
    const params: Record<string, number> = {};
    root.querySelectorAll<HTMLInputElement>("#attack-params input").forEach((i) => {
      if (i.value !== "") params[i.dataset.param!] = Number(i.value);
    });
    const target = $<HTMLInputElement>("#attack-target");
    const t = target.disabled ? "" : target.value; // an untargeted attack ignores a target typed for another
    message("#attack-message", `running ${attack} …`);
    try {
      const original = state.input;
      const made = await api.adversarial(state.model.id, original, attack, params, t === "" ? null : Number(t));
      const a = made.adversarial!;
      await refreshSession();
      message("#attack-message", `${inputLabel(made.id, made.name)}: ${a.original_name} → ${a.prediction_name}${a.success ? "" : " (prediction unchanged)"}, L2 ${a.l2.toFixed(3)}, L∞ ${a.linf.toFixed(3)}` +
        frozenNote(a));
      $<HTMLSelectElement>("#compare-a").value = original;
      $<HTMLSelectElement>("#compare-b").value = made.id;
      await selectInput(made.id);
      await runCompare();
    } catch (e) {
      message("#attack-message", reason(e), true);
    }
  }

  // --- wiring ----------------------------------------------------------------------------------------
  const on = (sel: string, ev: string, fn: (e: Event) => unknown) => $(sel).addEventListener(ev, (e) => void fn(e));
  on("#add-zoo", "click", async () => {
    const name = $<HTMLSelectElement>("#zoo-name").value;
    message("#model-message", `loading ${name} …`);
    try {
      const m = await api.addZoo(name);
      message("#model-message", `added ${m.name}`);
      await addDefaultInputs(m);
      await refreshSession();
      await selectModel(m.id);
    } catch (e) {
      message("#model-message", reason(e), true);
    }
  });
  on("#model-file", "change", async (e) => {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) return;
    message("#model-message", `uploading ${file.name} …`);
    try {
      const m = await api.uploadModel(file);
      message("#model-message", `opened ${file.name} (${m.format}, ${m.layers} layers)`);
      await addDefaultInputs(m);
      await refreshSession();
      await selectModel(m.id);
    } catch (err) {
      message("#model-message", `${file.name} was refused: ${reason(err)}`, true);
    } finally {
      input.value = "";
    }
  });
  on("#input-file", "change", async (e) => {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) return;
    try {
      const made = await api.uploadInput(file, file.name);
      await refreshSession();
      message("#input-message", `added ${inputLabel(made.id, made.name)}: ${made.steps.map((s) => s.text).join("; ")}`);
      await selectInput(made.id);
    } catch (err) {
      message("#input-message", `${file.name} was refused: ${reason(err)}`, true);
    } finally {
      input.value = "";
    }
  });
  on("#add-sample", "click", async () => {
    try {
      const made = await api.addSample($<HTMLSelectElement>("#sample-set").value, Number($<HTMLInputElement>("#sample-index").value || 0));
      await refreshSession();
      await selectInput(made.id);
    } catch (err) {
      message("#input-message", reason(err), true);
    }
  });
  on("#sketch-clear", "click", () => sketch.clear());
  on("#sketch-predict", "click", async () => {
    if (!sketch.strokes) return message("#input-message", "the sketchpad is empty: draw on it first", true);
    try {
      const made = await api.uploadInput(await sketch.toBlob(), "sketch.png", "sketch");
      await refreshSession();
      message("#input-message", `sketch added as ${inputLabel(made.id, made.name)}`);
      await selectInput(made.id);
    } catch (err) {
      message("#input-message", reason(err), true);
    }
  });
  on("#attack", "change", () => renderAttackParams());
  on("#attack-run", "click", () => runAttack());
  on("#saliency-run", "click", () => runSaliency());
  on("#saliency-show", "change", () => drawOverlay($<HTMLCanvasElement>("#saliency-canvas"), state.image, $<HTMLInputElement>("#saliency-show").checked ? state.saliency : null));
  on("#freeze-clear", "click", () => attempt("#layer-message", () => applyFreeze({})));
  on("#compare-run", "click", () => runCompare());
  on("#compare-layers", "change", (e) => {
    const c = e.target as HTMLInputElement;
    if (c.checked) state.compareLayers.add(c.value);
    else state.compareLayers.delete(c.value);
    $("#compare-count").textContent = String(state.compareLayers.size);
  });
  /** The comparison over the whole page (the page under it does not scroll), or back in its place. */
  function setCompareFull(full: boolean): void {
    if ($("#compare-panel").classList.contains("full") === full) return;
    $("#compare-panel").classList.toggle("full", full);
    document.body.classList.toggle("overlay-open", full);
    $("#compare-expand").textContent = full ? "close" : "expand";
    $("#compare-expand").title = full ? "back to the page (Esc)" : "show the comparison over the whole page";
    if (state.comparison) void runCompare();
  }
  on("#compare-expand", "click", () => setCompareFull(!$("#compare-panel").classList.contains("full")));
  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape") setCompareFull(false);
  };
  document.addEventListener("keydown", onKey);
  let spinning = false;
  on("#spin", "click", () => {
    spinning = !spinning;
    structure.setSpin(spinning);
    $("#spin").classList.toggle("active", spinning);
  });
  on("#expand-all", "click", () => {
    state.collapsed = new Set();
    renderStructure(false);
  });
  on("#collapse-auto", "click", () => {
    if (state.model) state.collapsed = collapseTarget(state.model.graph);
    renderStructure(false);
  });

  async function addDefaultInputs(m: ModelDetails): Promise<void> {
    const have = state.session?.inputs ?? [];
    const shape = m.input_spec.shape;
    const fits = have.some((i) => i.shape[0] === shape[0] && !i.adversarial);
    if (fits || !m.sample_sets.length) return;
    for (let k = 0; k < 4; k++) await api.addSample(m.sample_sets[0], k);
  }

  refreshSession()
    .then(async (s) => {
      const want = params.get("model");
      const pick = s.models.find((m) => m.id === want) ?? s.models[s.models.length - 1];
      if (pick) await selectModel(pick.id);
    })
    .catch((e) => {
      setConnection(false);
      message("#model-message", reason(e), true);
    });

  return () => {
    disposed = true;
    document.removeEventListener("keydown", onKey);
    document.body.classList.remove("overlay-open");
    structure.dispose();
    images.clear();
    delete window.convscopeExplorer;
  };
}
