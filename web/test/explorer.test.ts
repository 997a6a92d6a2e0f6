// The explorer's pure logic: module hierarchy collapse/expand, map grids and hit tests, dense units,
// freeze toggling. The graph is a small hand-made ResNet-like hierarchy.
import { describe, expect, it } from "vitest";
import type { Graph } from "../src/views/explorer/client";
import {
  cellAt, comparePair, defaultCollapsed, detailText, expand, frozenNote, gridLayout, inputNames, labelFor, modelSummary, stripLayout,
  toggleFrozen, unitAt, valueAt, visibleUnits,
} from "../src/views/explorer/logic";

function layer(id: string, parent: string | null, shape: number[]) {
  return { id, kind: "conv2d", category: "conv", output_shape: shape, params: 1, parent } as unknown as Graph["layers"][number];
}

const graph = {
  layers: [
    layer("input", null, [3, 8, 8]),
    layer("stem", null, [4, 8, 8]),
    layer("layer1.0.conv1", "layer1.0", [4, 8, 8]),
    layer("layer1.0.conv2", "layer1.0", [4, 8, 8]),
    layer("layer1.1.conv1", "layer1.1", [4, 8, 8]),
    layer("layer1.1.conv2", "layer1.1", [8, 4, 4]),
    layer("fc", null, [10]),
  ],
  containers: [
    { id: "layer1", type: "Sequential", parent: null },
    { id: "layer1.0", type: "Block", parent: "layer1" },
    { id: "layer1.1", type: "Block", parent: "layer1" },
  ],
  edges: [],
} as unknown as Graph;

describe("module hierarchy", () => {
  it("shows every layer when nothing is collapsed", () => {
    expect(visibleUnits(graph, new Set()).map((u) => u.id)).toEqual(graph.layers.map((l) => l.id));
  });
  it("a collapsed container stands for its layers once, with its last layer's shape", () => {
    const units = visibleUnits(graph, new Set(["layer1"]));
    expect(units.map((u) => u.id)).toEqual(["input", "stem", "layer1", "fc"]);
    expect(units[2]).toMatchObject({ container: true, layers: ["layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2"], shape: [8, 4, 4] });
  });
  it("collapses as little as fits the budget, and expands one container at a time", () => {
    const collapsed = defaultCollapsed(graph, 5);
    expect(visibleUnits(graph, collapsed).length).toBeLessThanOrEqual(5);
    expect([...collapsed].sort()).toEqual(["layer1.0", "layer1.1"]);
    expect(defaultCollapsed(graph, 60).size).toBe(0);
    const opened = expand(graph, new Set(["layer1"]), "layer1");
    expect(visibleUnits(graph, opened).map((u) => u.id)).toEqual(["input", "stem", "layer1.0", "layer1.1", "fc"]);
  });
});

describe("map grids", () => {
  const maps = { count: 3, total: 3, width: 2, height: 2, data: "", vmin: [0, -1, 10], vmax: [1, 1, 20] };
  it("lays maps out to fit and finds the map and pixel under a point", () => {
    const grid = gridLayout(3, 2, 2, 100, { pad: 2, minSide: 10, maxCell: 5 });
    expect(grid.columns).toBe(3);
    expect(grid.cell).toBe(5);
    expect(cellAt(grid, 3, 2, 2, 0, 0)).toEqual({ f: 0, x: 0, y: 0 });
    expect(cellAt(grid, 3, 2, 2, 12 + 6, 6)).toEqual({ f: 1, x: 1, y: 1 });
    expect(cellAt(grid, 3, 2, 2, 10.5, 1)).toBeNull(); // the gap between maps
  });
  it("reads a value back from its 8-bit pixel and the map's range", () => {
    const pixels = new Uint8Array([0, 255, 0, 0, 0, 0, 255, 0, 0, 51, 0, 0]);
    expect(valueAt(maps, pixels, 0, 1, 0)).toBe(1);
    expect(valueAt(maps, pixels, 1, 0, 1)).toBe(1);
    expect(valueAt(maps, pixels, 2, 1, 0)).toBeCloseTo(12);
  });
  it("a dense layer's units are row-major, the padding is no unit", () => {
    expect(unitAt({ width: 4, units: 10 }, { x: 1, y: 2 })).toBe(9);
    expect(unitAt({ width: 4, units: 10 }, { x: 2, y: 2 })).toBeNull();
    expect(unitAt({ width: 4, units: null }, { x: 0, y: 0 })).toBeNull();
  });
});

describe("freezing", () => {
  it("toggles a filter and drops layers with none left, without touching the input", () => {
    const start = { conv1: [3] };
    const next = toggleFrozen(start, "conv1", 1);
    expect(next).toEqual({ conv1: [1, 3] });
    expect(start).toEqual({ conv1: [3] });
    expect(toggleFrozen(toggleFrozen(next, "conv1", 1), "conv1", 3)).toEqual({});
  });
});

describe("compare's inputs", () => {
  it("starts on the first two and keeps a choice while its input exists", () => {
    expect(comparePair(["i1", "i2", "i3"], "", "")).toEqual(["i1", "i2"]);
    expect(comparePair(["i1", "i2", "i3"], "i3", "i1")).toEqual(["i3", "i1"]);
    expect(comparePair(["i1"], "", "")).toEqual(["i1", "i1"]);
    expect(comparePair([], "i1", "i2")).toEqual(["", ""]);
  });
  it("never falls back to the input the other one shows", () => {
    // A (i1) removed: it fell back to the first input left, i2, which B already showed
    expect(comparePair(["i2", "i3"], "i1", "i2")).toEqual(["i3", "i2"]);
    expect(comparePair(["i2", "i3"], "i2", "i1")).toEqual(["i2", "i3"]);
    expect(comparePair(["i3", "i4"], "i1", "i2")).toEqual(["i3", "i4"]);
    expect(comparePair(["i2"], "i1", "i2")).toEqual(["i2", "i2"]);
  });
});

describe("error details", () => {
  it("reads the server's sentence, or FastAPI's validation list, without status prefixes", () => {
    expect(detailText("no model 'm2' in this session; models are m1", "404 Not Found")).toBe("no model 'm2' in this session; models are m1");
    const list = [{ type: "int_type", loc: ["body", "conv1", 1], msg: "Input should be a valid integer", input: "1" }];
    expect(detailText(list, "422")).toBe("conv1.1: Input should be a valid integer");
    expect(detailText([{ loc: ["query", "target"], msg: "too big" }, { loc: [], msg: "and this" }], "")).toBe("target: too big; and this");
    expect(detailText(undefined, "502 Bad Gateway")).toBe("502 Bad Gateway");
    expect(detailText({ odd: 1 }, "")).toBe('{"odd":1}');
  });
});

describe("layer table thumbnails", () => {
  it("keeps every map's aspect at one height, as many as fit", () => {
    const square = stripLayout(16, 26, 26, 18, 176);
    expect(square).toMatchObject({ count: 8, cellWidth: 18, cellHeight: 18, height: 18 });
    expect(square.width).toBe(8 * 20 - 2);
    expect(stripLayout(3, 5, 5, 18, 176)).toMatchObject({ count: 3, cellWidth: 18, width: 58 });
    // a wide map is as tall, and wider (not squashed into a square)
    const wide = stripLayout(4, 20, 10, 18, 176);
    expect(wide).toMatchObject({ count: 4, cellWidth: 36, cellHeight: 18 });
    expect(wide.cellWidth / wide.cellHeight).toBe(2);
  });
  it("shrinks one map wider than the room, keeping its aspect", () => {
    const strip = stripLayout(1, 100, 2, 18, 176);
    expect(strip.count).toBe(1);
    expect(strip.cellWidth).toBe(176);
    expect(strip.cellWidth / strip.cellHeight).toBeCloseTo(50);
    expect(strip.height).toBe(18); // (the row stays as tall as the others)
    expect(stripLayout(0, 4, 4, 18, 176)).toMatchObject({ count: 0, width: 0 });
  });
});

describe("input names", () => {
  it("are the inputs' names, numbered where they repeat, never the session's ids", () => {
    const names = inputNames([
      { id: "i1", name: "sketch.png" },
      { id: "i2", name: "foolbox-mnist[0] mnist_00_7.png" },
      { id: "i7", name: "sketch.png" },
      { id: "i8", name: "sketch.png" },
    ]);
    expect([...names]).toEqual([
      ["i1", "sketch.png"],
      ["i2", "foolbox-mnist[0] mnist_00_7.png"],
      ["i7", "sketch.png (2)"],
      ["i8", "sketch.png (3)"],
    ]);
  });
  it("never number one input into another's name", () => {
    const names = inputNames([{ id: "a", name: "x" }, { id: "b", name: "x (2)" }, { id: "c", name: "x" }]);
    expect(new Set(names.values()).size).toBe(3);
    expect(names.get("b")).toBe("x (2)");
    expect(names.get("c")).toBe("x (3)");
  });
});

describe("wording", () => {
  it("says an attack ran without the frozen filters, it or them as many as there were", () => {
    const with_freeze = { original_prediction: 7, original_name: "7", prediction: 3, prediction_name: "3" };
    expect(frozenNote({ freeze: { conv1: [0] }, with_freeze })).toBe(" (attacked without the 1 frozen filter; with it: 7 → 3)");
    expect(frozenNote({ freeze: { conv1: [0, 2], conv2: [5] }, with_freeze })).toBe(" (attacked without the 3 frozen filters; with them: 7 → 3)");
    expect(frozenNote({ freeze: {}, with_freeze: null })).toBe("");
  });
});

describe("models and labels", () => {
  const spec = (shape: number[]) => ({ shape, class_names: null });
  it("say whether a model is trained, as its source says", () => {
    expect(modelSummary({ format: "zoo", source: "zoo:vgg12 (untrained)", layers: 39, params: 896, input_spec: spec([3, 32, 32]) }))
      .toBe("zoo (untrained), 39 layers, 896 params, input 3×32×32");
    expect(modelSummary({ format: "zoo", source: "zoo:lenet5 (trained on mnist-5k)", layers: 12, params: 156, input_spec: spec([1, 28, 28]) }))
      .toBe("zoo (trained on mnist-5k), 12 layers, 156 params, input 1×28×28");
    expect(modelSummary({ format: "onnx", source: "upload:net.onnx", layers: 3, params: 10, input_spec: spec([1, 8, 8]) }))
      .toBe("onnx, 3 layers, 10 params, input 1×8×8");
  });
  it("count an input's label as a class of a model that takes the input as it is, not of one that remakes it", () => {
    const digit = { label: 7, shape: [1, 28, 28] };
    expect(labelFor(digit, [1, 28, 28])).toBe(7);
    expect(labelFor(digit, [3, 32, 32])).toBeNull(); // (a CIFAR-10 model: its class 7 is "horse")
    expect(labelFor({ label: null, shape: [1, 28, 28] }, [1, 28, 28])).toBeNull();
    expect(labelFor(undefined, [1, 28, 28])).toBeNull();
  });
});
