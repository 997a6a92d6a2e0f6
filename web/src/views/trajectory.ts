// Weight trajectories in 3-D: a layer's weights over the steps, on three chosen dimensions or
// on the first three principal components, as a polyline coloured grey (early) to pink (late).
import * as THREE from "three";
import type { Frame } from "../frames";
import { ThreeView } from "./three";

export type Projection = "dims" | "pca";

/** A flat index into a weight of ``shape`` as ``w[f,c,r,k]`` (filter, channel, row, column). */
export function weightName(flat: number, shape: number[]): string {
  if (!shape.length) return `w[${flat}]`;
  const at: number[] = [];
  let rest = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    at.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  return `w[${at.join(",")}]`;
}

/** What the view's note says of ``n`` points of the latest trajectory frame ``last``: which
 * weights the axes are, or how much of the path's spread each principal axis holds. */
export function describeAxes(last: Frame | undefined, projection: Projection, n: number): string {
  if (!n || !last) return "no trajectory frames yet";
  const axes = ["x", "y", "z"];
  const p = last.payload;
  if (projection === "dims") {
    const idx = p.dim_index ? Array.from(p.dim_index.data as ArrayLike<number>) : [];
    const shape: number[] = Array.isArray(p.shape) ? p.shape : [];
    return idx.length === 3
      ? `${n} points on three chosen weights: ${idx.map((i, k) => `${axes[k]} ${weightName(i, shape)}`).join(", ")}`
      : `${n} points, three chosen weights`;
  }
  const ev = p.explained_variance ? Array.from(p.explained_variance.data as ArrayLike<number>) : [];
  const shares = ev.map((v, k) => `${axes[k]} PC ${k + 1} ${Number.isFinite(v) ? `${Math.round(v * 100)}%` : "-"}`);
  return `${n} points, first three principal components` + (shares.length ? ` (${shares.join(", ")} of the path's variance)` : "");
}

export class TrajectoryView extends ThreeView {
  private group = new THREE.Group();
  private points: Frame[] = [];
  projection: Projection = "pca";
  upTo = Infinity;

  constructor(container: HTMLElement) {
    super(container, 45, 0.01, 100);
    this.scene.add(this.group);
    this.scene.add(new THREE.AxesHelper(1.2));
    const box = new THREE.Box3Helper(new THREE.Box3(new THREE.Vector3(-1, -1, -1), new THREE.Vector3(1, 1, 1)), 0x3a3f47);
    this.scene.add(box);
    this.camera.position.set(2.6, -2.8, 2.2);
    this.controls.update();
    this.resize();
  }

  setPoints(frames: Frame[]): void {
    const sorted = frames.slice().sort((a, b) => a.step - b.step);
    // only the path since the last change of shape (pruning starts a new one)
    const shape = String(sorted[sorted.length - 1]?.payload.shape);
    let start = sorted.length;
    while (start > 0 && String(sorted[start - 1].payload.shape) === shape) start--;
    this.points = sorted.slice(start);
    this.redraw();
  }

  add(frame: Frame): void {
    // a new weight shape (after pruning) starts a new path
    const last = this.points[this.points.length - 1];
    if (last && String(last.payload.shape) !== String(frame.payload.shape)) this.points = [];
    this.points.push(frame);
    this.redraw();
  }

  /** The points to draw up to `upTo`: per-frame chosen dims, or the latest frame's whole PCA path. */
  private coords(): number[][] {
    const shown = this.points.filter((f) => f.step <= this.upTo);
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
    const pts = this.coords().map((p) => p.map((v) => (Number.isFinite(v) ? v : 0)));
    const shown = this.points.filter((f) => f.step <= this.upTo);
    this.note.textContent = describeAxes(shown[shown.length - 1], this.projection, pts.length);
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
    this.render();
  }
}
