// The TensorView weight grid: one window of kh x kw blocks per (channel, filter) pair, filters
// along x, input channels along y; each block coloured blue (negative) to red (positive) and
// raised in z by its sign and size. A layer with one input channel wraps its filters into rows
// of ceil(sqrt(F)) windows (as convscope.export._scenes.window_origins does for ParaView).
// The camera is fitted to the grid's bounds (every block in view, centred, whatever the number
// of filters) until the user orbits; a double click fits it again. Orbit with the mouse, zoom
// with the wheel; the block under the pointer is named in the note, under the canvas beside a
// colour key. Filters go by their original numbers (before any pruning), and so do input
// channels where the run's pruning frames say which the layer lost.
import * as THREE from "three";
import { diverging } from "../colors";
import type { Frame } from "../frames";
import { type ColourKey, colourKey, rampCss } from "./colourKey";
import { type FilterNames, filterName, inputNumberingNote, numberingNote } from "./filterNumbers";
import { noun } from "./plural";
import { type Bounds, ThreeView } from "./three";

const MAX_SIDE = 64; // at most 64 filters x 64 channels are drawn (the rest is summarised)
const HEIGHT = 2.5;
const BLOCK = 0.92; // a block's side (1 apart)
/** the direction from the grid to the camera as the view opens: in front, from above */
const VIEW_DIR: [number, number, number] = [0, -0.55, 0.5];
const FOV = 40;

export class WeightGridView extends ThreeView {
  private mesh: THREE.InstancedMesh | null = null;
  private shape = "";
  private frame: Frame | null = null;
  private names: FilterNames | null = null;
  private inputs: FilterNames | null = null;
  private summary = "";
  private raycaster = new THREE.Raycaster();
  /** the weight under the pointer, as the note says it (empty: none) */
  hovered = "";
  private key: ColourKey;

  constructor(container: HTMLElement) {
    super(container, FOV, 0.1, 5000, true);
    this.scene.add(new THREE.AmbientLight(0xffffff, 1.6));
    const sun = new THREE.DirectionalLight(0xffffff, 1.8);
    sun.position.set(1, -1, 2);
    this.scene.add(sun);
    // the blocks' colour ramp in the caption row, its ends' weights set as frames come
    const ramp = rampCss([-1, -0.5, 0, 0.5, 1].map((t) => diverging(t).map((v) => v * 255) as [number, number, number]));
    this.key = colourKey(ramp, "w: red raised (positive), blue sunk (negative), height |w|");
    this.foot!.prepend(this.key.el);
    this.resize();
    const canvas = this.renderer.domElement;
    canvas.addEventListener("pointermove", (e) => this.hover(e.offsetX, e.offsetY));
    canvas.addEventListener("pointerleave", () => this.setHovered(""));
    canvas.title = "drag to orbit, wheel to zoom, double-click to fit the grid again";
  }

  private hover(x: number, y: number): void {
    if (!this.mesh || !this.frame) return;
    const canvas = this.renderer.domElement;
    const ndc = new THREE.Vector2((x / canvas.clientWidth) * 2 - 1, -(y / canvas.clientHeight) * 2 + 1);
    this.raycaster.setFromCamera(ndc, this.camera);
    const hit = this.raycaster.intersectObject(this.mesh)[0];
    this.setHovered(hit?.instanceId === undefined ? "" : describeBlock(this.frame, hit.instanceId, this.names, this.inputs));
  }

  private setHovered(text: string): void {
    this.hovered = text;
    this.note.textContent = text || this.summary;
  }

  /** Draws ``frame``; ``names`` numbers its filters, ``inputs`` its input channels, as before
   * any pruning (null: as they are). */
  update(frame: Frame, names: FilterNames | null = null, inputs: FilterNames | null = null): void {
    this.frame = frame;
    this.names = names;
    this.inputs = inputs;
    const w = frame.payload.weights;
    const shape: number[] = w.shape.length === 2 ? [w.shape[0], w.shape[1], 1, 1] : w.shape;
    const [F, C, kh, kw] = shape;
    const fs = Math.min(F, MAX_SIDE), cs = Math.min(C, MAX_SIDE);
    const vmax = Number(frame.payload.vmax) || 1;
    const count = fs * cs * kh * kw;
    const key = `${fs}x${cs}x${kh}x${kw}`;
    if (key !== this.shape) this.build(fs, cs, kh, kw, count);
    this.summary = gridNote(shape, names, inputs);
    this.note.textContent = this.summary;
    this.key.lo.textContent = `−${vmax.toPrecision(2)}`;
    this.key.hi.textContent = `+${vmax.toPrecision(2)}`;
    this.hovered = "";
    const mesh = this.mesh!;
    const m = new THREE.Matrix4();
    const color = new THREE.Color();
    const gap = 1;
    let i = 0;
    for (let c = 0; c < cs; c++) {
      for (let f = 0; f < fs; f++) {
        const [row, col] = windowOrigin(f, c, fs, cs);
        for (let y = 0; y < kh; y++) {
          for (let x = 0; x < kw; x++) {
            const v = w.data[((f * C + c) * kh + y) * kw + x] as number;
            const t = v / vmax;
            const h = Math.max(0.02, Math.abs(t) * HEIGHT);
            const px = col * (kw + gap) + x;
            const py = -(row * (kh + gap) + y);
            m.makeScale(BLOCK, BLOCK, h);
            m.setPosition(px, py, Math.sign(t) * h / 2);
            mesh.setMatrixAt(i, m);
            const [r, g, b] = diverging(t);
            mesh.setColorAt(i, color.setRGB(r, g, b));
            i++;
          }
        }
      }
    }
    mesh.instanceMatrix.needsUpdate = true;
    if (mesh.instanceColor) mesh.instanceColor.needsUpdate = true;
    // (bounds of the blocks as they now stand: the pointer's ray is tested against them first,
    // and bounds made while every block sat at the origin would let no ray through)
    mesh.computeBoundingSphere();
    mesh.computeBoundingBox();
    this.render();
  }

  private build(fs: number, cs: number, kh: number, kw: number, count: number): void {
    if (this.mesh) {
      this.scene.remove(this.mesh);
      this.mesh.dispose();
    }
    const geometry = new THREE.BoxGeometry(1, 1, 1);
    const material = new THREE.MeshLambertMaterial({ color: 0xffffff });
    this.mesh = new THREE.InstancedMesh(geometry, material, count);
    this.scene.add(this.mesh);
    this.shape = `${fs}x${cs}x${kh}x${kw}`;
    // a new grid (the first, or another shape after pruning): framed afresh
    this.fitTo(gridBounds(fs, cs, kh, kw), VIEW_DIR);
  }
}

/** What the note says of a grid of weights of ``shape`` (F x C x kh x kw) while no block is
 * pointed at: its size, its layout, and (once each) how its filters and input channels are
 * numbered where ``names`` and ``inputs`` give their numbers before pruning. */
export function gridNote(shape: number[], names: FilterNames | null = null, inputs: FilterNames | null = null): string {
  const [F, C, kh, kw] = shape.length === 2 ? [shape[0], shape[1], 1, 1] : shape;
  const fs = Math.min(F, MAX_SIDE), cs = Math.min(C, MAX_SIDE);
  return `${F} ${noun(F, "filter")} x ${C} ${noun(C, "channel")} of ${kh}x${kw}` + (F > fs || C > cs ? ` (first ${fs} x ${cs} shown)` : "") +
    `, ${layoutText(fs, cs)}; point at a block for its weight` + (names ? `; ${numberingNote(names)}` : "") +
    (inputs ? `; ${inputNumberingNote(inputs)}` : "");
}

/** How the windows are laid out, in words. */
export function layoutText(filters: number, channels: number): string {
  const perRow = wrapWidth(filters, channels);
  if (perRow) return `one window per filter, ${perRow} to a row from the top left (one input channel)`;
  if (channels === 1) return "one window";
  return filters === 1 ? "input channels down the rows" : "filters along the columns (x), input channels down the rows (y)";
}

/** Where the blocks of a grid of ``filters`` x ``channels`` windows of kh x kw can reach (blocks
 * as high as a weight of |w| max stands, up or down). */
export function gridBounds(filters: number, channels: number, kh: number, kw: number): Bounds {
  const [rows, cols] = gridSize(filters, channels);
  const half = BLOCK / 2;
  return {
    min: [-half, -((rows - 1) * (kh + 1) + kh - 1) - half, -HEIGHT],
    max: [(cols - 1) * (kw + 1) + kw - 1 + half, half, HEIGHT],
  };
}

/** The weight of block ``i`` of the mesh (blocks go channel by channel, filter by filter, then
 * row by row within a window, as update() lays them) and where it sits. */
export function blockAt(i: number, shape: number[]): { f: number; c: number; y: number; x: number } {
  const [F, , kh, kw] = shape.length === 2 ? [shape[0], shape[1], 1, 1] : shape;
  const fs = Math.min(F, MAX_SIDE);
  const x = i % kw, y = Math.floor(i / kw) % kh, f = Math.floor(i / (kw * kh)) % fs, c = Math.floor(i / (kw * kh * fs));
  return { f, c, y, x };
}

/** What the note says of block ``i``: its filter (by its original number where ``names`` gives
 * it), input channel (likewise where ``inputs`` gives it), position and value. */
export function describeBlock(frame: Frame, i: number, names: FilterNames | null = null, inputs: FilterNames | null = null): string {
  const w = frame.payload.weights;
  const shape: number[] = w.shape.length === 2 ? [w.shape[0], w.shape[1], 1, 1] : w.shape;
  const [, C, kh, kw] = shape;
  const { f, c, y, x } = blockAt(i, shape);
  const v = w.data[((f * C + c) * kh + y) * kw + x] as number;
  const where = kh * kw > 1 ? `, row ${y}, column ${x}` : "";
  return `filter ${filterName(names, f)}, channel ${filterName(inputs, c)}${where}: w = ${v.toPrecision(3)}`;
}

/** Row and column (in windows) of filter f's window for input channel c. */
export function windowOrigin(f: number, c: number, filters: number, channels: number): [number, number] {
  const perRow = wrapWidth(filters, channels);
  return perRow ? [Math.floor(f / perRow), f % perRow] : [c, f];
}

/** Rows and columns of windows in the grid. */
export function gridSize(filters: number, channels: number): [number, number] {
  const perRow = wrapWidth(filters, channels);
  return perRow ? [Math.ceil(filters / perRow), perRow] : [channels, filters];
}

/** Windows to a row when the filters wrap (one input channel, several filters), else 0. */
function wrapWidth(filters: number, channels: number): number {
  return channels === 1 && filters > 1 ? Math.ceil(Math.sqrt(filters)) : 0;
}
