// Weight trajectories in 3-D: a layer's weights over the steps, on three chosen dimensions or
// on the first three principal components, as a polyline coloured grey (early) to pink (late).
import * as THREE from "three";
import type { Frame } from "../frames";
import { type FilterNames, filterName } from "./filterNumbers";
import { ThreeView } from "./three";

export type Projection = "dims" | "pca";

/** A flat index into a weight of ``shape`` as ``w[f,c,r,k]`` (filter, channel, row, column; the
 * filter by its original number where ``names`` gives it, after a pruning, and the input channel
 * where ``inputs`` gives it, after a pruning of the layer it reads). */
export function weightName(flat: number, shape: number[], names: FilterNames | null = null, inputs: FilterNames | null = null): string {
  if (!shape.length) return `w[${flat}]`;
  const at: number[] = [];
  let rest = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    at.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  at[0] = filterName(names, at[0]);
  if (at.length > 1) at[1] = filterName(inputs, at[1]);
  return `w[${at.join(",")}]`;
}

/** What the view's note says of ``n`` points of the latest trajectory frame ``last``: which
 * weights the axes are, or how much of the path's spread each principal axis holds. */
export function describeAxes(
  last: Frame | undefined, projection: Projection, n: number, names: FilterNames | null = null, inputs: FilterNames | null = null,
): string {
  if (!n || !last) return "no trajectory frames yet";
  const axes = ["x", "y", "z"];
  const p = last.payload;
  if (projection === "dims") {
    const idx = p.dim_index ? Array.from(p.dim_index.data as ArrayLike<number>) : [];
    const shape: number[] = Array.isArray(p.shape) ? p.shape : [];
    return idx.length === 3
      ? `${n} points on three chosen weights: ${idx.map((i, k) => `${axes[k]} ${weightName(i, shape, names, inputs)}`).join(", ")}`
      : `${n} points, three chosen weights`;
  }
  const ev = p.explained_variance ? Array.from(p.explained_variance.data as ArrayLike<number>) : [];
  const shares = ev.map((v, k) => `${axes[k]} PC ${k + 1} ${Number.isFinite(v) ? `${Math.round(v * 100)}%` : "-"}`);
  return `${n} points, first three principal components` + (shares.length ? ` (${shares.join(", ")} of the path's variance)` : "");
}

/** Where a trajectory's path stands at step ``upTo``: the frames of the path that the newest
 * frame at or before ``upTo`` belongs to (a run of frames of one weight shape: pruning starts a
 * new path), those of them up to ``upTo``, and the shape of the path before it, if any (where
 * the path restarted). ``frames`` sorted by step. */
export interface PathAt {
  /** the shown path's frames, up to ``upTo`` (empty: no frame at or before it) */
  shown: Frame[];
  /** the weight shape before this path started, and the step of its first frame (null: the first path) */
  restart: { from: string; to: string; step: number } | null;
  /** the step of the next path's first frame after ``upTo``, where the shape changes later (null: none) */
  next: number | null;
}

export const shapeText = (shape: unknown): string => (Array.isArray(shape) ? shape.join("x") : String(shape ?? "?"));

export function pathAt(frames: Frame[], upTo: number): PathAt {
  let end = 0; // frames[0, end) are at or before upTo
  while (end < frames.length && frames[end].step <= upTo) end++;
  if (end === 0) return { shown: [], restart: null, next: null };
  const shape = String(frames[end - 1].payload.shape);
  let start = end - 1;
  while (start > 0 && String(frames[start - 1].payload.shape) === shape) start--;
  let after = end;
  while (after < frames.length && String(frames[after].payload.shape) === shape) after++;
  const restart = start > 0
    ? { from: shapeText(frames[start - 1].payload.shape), to: shapeText(frames[start].payload.shape), step: frames[start].step }
    : null;
  return { shown: frames.slice(start, end), restart, next: after < frames.length ? frames[after].step : null };
}

/** What the note adds of where the path restarted (or will restart, after the step shown). */
export function describeRestart(at: PathAt): string {
  if (at.restart) return `; new path from step ${at.restart.step} (weights ${at.restart.from} → ${at.restart.to}), its start ringed`;
  if (at.next !== null) return `; the weights change shape at step ${at.next}, where a new path starts`;
  return "";
}

export class TrajectoryView extends ThreeView {
  private group = new THREE.Group();
  private points: Frame[] = [];
  projection: Projection = "pca";
  upTo = Infinity;
  /** the original numbers of the filters in a frame (set by the page that knows the run's prunings) */
  numbering: (frame: Frame) => FilterNames | null = () => null;
  /** the original numbers of the input channels in a frame (after a pruning of the layer it reads) */
  inputNumbering: (frame: Frame) => FilterNames | null = () => null;

  constructor(container: HTMLElement) {
    super(container, 45, 0.01, 100, true);
    this.scene.add(this.group);
    this.scene.add(new THREE.AxesHelper(1.2));
    const box = new THREE.Box3Helper(new THREE.Box3(new THREE.Vector3(-1, -1, -1), new THREE.Vector3(1, 1, 1)), 0x3a3f47);
    this.scene.add(box);
    this.resize();
    // the whole box (and the axes, a little longer) in view, whatever the panel's shape
    this.fitTo({ min: [-1.05, -1.05, -1.05], max: [1.2, 1.2, 1.2] }, [2.6, -2.8, 2.2]);
  }

  /** Every trajectory frame of the layer (all its paths: a step before a pruning shows the path
   * as it then stood, a step after it the new one). */
  setPoints(frames: Frame[]): void {
    this.points = frames.slice().sort((a, b) => a.step - b.step);
    this.redraw();
  }

  add(frame: Frame): void {
    // (kept in step order, one frame a step: a live frame may repeat one already fetched)
    const pts = this.points;
    let i = pts.length;
    while (i > 0 && pts[i - 1].step > frame.step) i--;
    if (i > 0 && pts[i - 1].step === frame.step) pts[i - 1] = frame;
    else pts.splice(i, 0, frame);
    this.redraw();
  }

  /** The path shown at ``upTo`` (see pathAt). */
  at(): PathAt {
    return pathAt(this.points, this.upTo);
  }

  /** The points to draw up to `upTo`: per-frame chosen dims, or the latest frame's whole PCA path. */
  private coords(shown: Frame[]): number[][] {
    if (this.projection === "dims") return shown.map((f) => Array.from(f.payload.dims.data as Float32Array));
    const last = shown[shown.length - 1];
    if (!last?.payload.pca_path) return shown.map((f) => Array.from(f.payload.pca.data as Float32Array));
    const path = last.payload.pca_path, n = path.shape[0];
    const out: number[][] = [];
    for (let i = 0; i < n; i++) out.push([0, 1, 2].map((k) => (path.data[i * 3 + k] as number)));
    return out;
  }

  redraw(): void {
    this.group.clear();
    // fewer than three points give no third (or second) principal axis yet: draw them at 0
    const at = this.at();
    const shown = at.shown;
    const pts = this.coords(shown).map((p) => p.map((v) => (Number.isFinite(v) ? v : 0)));
    const last = shown[shown.length - 1];
    const dims = last && this.projection === "dims";
    this.note.textContent = describeAxes(last, this.projection, pts.length, dims ? this.numbering(last) : null, dims ? this.inputNumbering(last) : null) +
      (pts.length ? describeRestart(at) : "");
    if (pts.length === 0) return this.render();
    const lo = [0, 1, 2].map((k) => Math.min(...pts.map((p) => p[k])));
    const hi = [0, 1, 2].map((k) => Math.max(...pts.map((p) => p[k])));
    const scale = (p: number[]) => p.map((v, k) => (hi[k] > lo[k] ? ((v - lo[k]) / (hi[k] - lo[k])) * 2 - 1 : 0));
    const positions: number[] = [];
    const colors: number[] = [];
    const grey = new THREE.Color(0x9aa0a6), pink = new THREE.Color(0xff4fa3);
    pts.forEach((p, i) => {
      positions.push(...scale(p));
      const c = grey.clone().lerp(pink, pts.length > 1 ? i / (pts.length - 1) : 1);
      colors.push(c.r, c.g, c.b);
    });
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute("position", new THREE.Float32BufferAttribute(positions, 3));
    geometry.setAttribute("color", new THREE.Float32BufferAttribute(colors, 3));
    this.group.add(new THREE.Line(geometry, new THREE.LineBasicMaterial({ vertexColors: true })));
    this.group.add(new THREE.Points(geometry, new THREE.PointsMaterial({ size: 0.06, vertexColors: true })));
    const head = new THREE.Mesh(new THREE.SphereGeometry(0.06, 16, 12), new THREE.MeshBasicMaterial({ color: 0xff4fa3 }));
    head.position.fromArray(positions.slice(-3));
    this.group.add(head);
    if (at.restart) {
      // where the path started again after the weights changed shape: a white ring round its first point
      const ring = new THREE.Mesh(new THREE.TorusGeometry(0.09, 0.014, 8, 32), new THREE.MeshBasicMaterial({ color: 0xffffff }));
      ring.position.fromArray(positions.slice(0, 3));
      ring.quaternion.copy(this.camera.quaternion); // (facing the camera as the view opens)
      this.group.add(ring);
    }
    this.render();
  }
}
