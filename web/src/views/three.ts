// What the 3-D views share: a renderer that keeps its pixels (so tests can read them), a
// camera with orbit controls that redraws on demand, a caption, and resizing with the panel.
// With ``footer``, the caption sits in a row of its own under the canvas (with whatever keys a
// view adds to it), so nothing drawn is hidden behind its words; else it lies over the canvas.
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import "./views.css";

/** An axis-aligned box (z up): [x, y, z] of its low and high corners. */
export interface Bounds {
  min: [number, number, number];
  max: [number, number, number];
}

export class ThreeView {
  readonly renderer: THREE.WebGLRenderer;
  protected scene = new THREE.Scene();
  protected camera: THREE.PerspectiveCamera;
  protected controls: OrbitControls;
  protected note: HTMLElement;
  /** the row under the canvas that holds the note (null: the note lies over the canvas) */
  protected foot: HTMLElement | null = null;
  /** what the camera was last fitted to (see fitTo; null: never) */
  fitted: { bounds: Bounds; dir: Vec } | null = null;
  private moved = false; // the user orbited or zoomed since: a resize keeps their view

  constructor(protected container: HTMLElement, fov: number, near: number, far: number, footer = false) {
    this.camera = new THREE.PerspectiveCamera(fov, 1, near, far);
    this.camera.up.set(0, 0, 1);
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(window.devicePixelRatio || 1);
    this.renderer.setClearColor(0x15181d);
    container.appendChild(this.renderer.domElement);
    this.note = document.createElement("div");
    this.note.className = "view-note";
    if (footer) {
      this.renderer.domElement.style.display = "block";
      this.foot = document.createElement("div");
      this.foot.className = "view-foot";
      this.foot.appendChild(this.note);
      container.appendChild(this.foot);
    } else container.appendChild(this.note);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.addEventListener("change", () => this.render());
    this.controls.addEventListener("start", () => (this.moved = true));
    this.renderer.domElement.addEventListener("dblclick", () => this.fit());
    const observer = new ResizeObserver(() => this.resize());
    observer.observe(container);
    if (this.foot) observer.observe(this.foot); // (a note that wraps onto a second line takes from the canvas)
  }

  protected resize(): void {
    const w = this.container.clientWidth || 400;
    const h = Math.max(80, (this.container.clientHeight || 300) - (this.foot?.offsetHeight ?? 0));
    this.renderer.setSize(w, h);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    if (this.fitted && !this.moved) this.fit();
    this.render();
  }

  /** Point the camera from direction ``dir`` at the whole of ``bounds``, centred in the view, and
   * keep it so as the view resizes (until the user orbits; a double click fits it again). */
  fitTo(bounds: Bounds, dir: Vec): void {
    this.fitted = { bounds, dir };
    this.fit();
  }

  private fit(): void {
    if (!this.fitted) return;
    const { position, target } = fitCamera(this.fitted.bounds, this.fitted.dir, this.camera.fov, this.camera.aspect);
    this.camera.position.set(...position);
    this.controls.target.set(...target);
    this.controls.update();
    this.moved = false;
    this.render();
  }

  render(): void {
    this.renderer.render(this.scene, this.camera);
  }

  dispose(): void {
    this.renderer.dispose();
    this.controls.dispose();
  }
}

export type Vec = [number, number, number];
const sub = (a: Vec, b: Vec): Vec => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const dot = (a: Vec, b: Vec) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: Vec, b: Vec): Vec => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const unit = (a: Vec): Vec => {
  const n = Math.hypot(...a) || 1;
  return [a[0] / n, a[1] / n, a[2] / n];
};

/** Where each corner of ``box`` lands on the screen of a camera at ``position`` looking along
 * ``forward`` (z up): normalised device coordinates, -1 to 1 across the view. */
export function projectCorners(box: Bounds, position: Vec, forward: Vec, fovDeg: number, aspect: number): [number, number][] {
  const f = unit(forward);
  const r = unit(cross(f, [0, 0, 1]));
  const u = cross(r, f);
  const tanV = Math.tan((fovDeg * Math.PI) / 360), tanH = tanV * aspect;
  const out: [number, number][] = [];
  for (const x of [box.min[0], box.max[0]])
    for (const y of [box.min[1], box.max[1]])
      for (const z of [box.min[2], box.max[2]]) {
        const d = sub([x, y, z], position);
        const depth = Math.max(1e-6, dot(d, f));
        out.push([dot(d, r) / (depth * tanH), dot(d, u) / (depth * tanV)]);
      }
  return out;
}

/** A camera looking at ``box`` from direction ``dir`` (from the box towards the camera) that
 * shows all of it, centred, its larger extent across ``fill`` of the view. */
export function fitCamera(box: Bounds, dir: Vec, fovDeg: number, aspect: number, fill = 0.9): { position: Vec; target: Vec } {
  const back = unit(dir), forward: Vec = [-back[0], -back[1], -back[2]];
  const r = unit(cross(forward, [0, 0, 1]));
  const u = cross(r, forward);
  const tanV = Math.tan((fovDeg * Math.PI) / 360), tanH = tanV * aspect;
  let target: Vec = [0, 1, 2].map((k) => (box.min[k] + box.max[k]) / 2) as Vec;
  const size = Math.hypot(...sub(box.max, box.min));
  const at = (d: number): Vec => [target[0] + back[0] * d, target[1] + back[1] * d, target[2] + back[2] * d];
  const spread = (d: number) => {
    const p = projectCorners(box, at(d), forward, fovDeg, aspect);
    const xs = p.map((q) => q[0]), ys = p.map((q) => q[1]);
    return { x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys), y1: Math.max(...ys) };
  };
  let dist = size;
  for (let round = 0; round < 6; round++) {
    // the nearest distance at which the box's projection, as wide as it is, fits: halving between
    // a distance too near (or behind a corner) and one that fits
    let near = 0, far = size * 0.5 + 1;
    const fits = (d: number) => {
      const s = spread(d);
      return s.x1 - s.x0 <= 2 * fill && s.y1 - s.y0 <= 2 * fill;
    };
    const inFront = (d: number) => {
      const c = at(d);
      for (const x of [box.min[0], box.max[0]]) for (const y of [box.min[1], box.max[1]]) for (const z of [box.min[2], box.max[2]])
        if (dot(sub([x, y, z], c), forward) <= 0.05 * size) return false;
      return true;
    };
    while (!(inFront(far) && fits(far))) far *= 2;
    for (let i = 0; i < 50; i++) {
      const mid = (near + far) / 2;
      if (inFront(mid) && fits(mid)) far = mid;
      else near = mid;
    }
    dist = far;
    // then the projection's middle moved to the view's: the target slid across the view
    const s = spread(dist);
    const ox = ((s.x0 + s.x1) / 2) * dist * tanH, oy = ((s.y0 + s.y1) / 2) * dist * tanV;
    if (Math.abs(ox) < 1e-4 * size && Math.abs(oy) < 1e-4 * size) break;
    target = [0, 1, 2].map((k) => target[k] + r[k] * ox + u[k] * oy) as Vec;
  }
  return { position: at(dist), target };
}
