// The 3-D structure view, after TensorSpace: one block per layer (or collapsed container) along x,
// sized by its output shape, its front face showing the layer's first feature map for the current
// input; an opened layer becomes a wall of planes, one per feature map. Drag to orbit, wheel to
// zoom, "spin" to turn; click a block to open it (a container expands).
import * as THREE from "three";
import { ThreeView } from "../three";
import type { Maps } from "./client";
import { blockSize, decodeBase64, formatShape, type Unit } from "./logic";
import { mapCanvas } from "./maps";

const CATEGORY_COLORS: Record<string, number> = {
  conv: 0x4c8bf5,
  dense: 0xf5a623,
  activation: 0x57c27a,
  pool: 0xb07cf0,
  norm: 0x39bccf,
  reshape: 0x9aa0a6,
  merge: 0xf06292,
  io: 0xe8eaed,
  container: 0xffd166,
  other: 0x8a8f98,
};
const GAP = 1.2;
const MAX_PLANES = 64;

export class StructureView extends ThreeView {
  private group = new THREE.Group();
  private blocks: { mesh: THREE.Mesh; unit: Unit }[] = [];
  private raycaster = new THREE.Raycaster();
  private down: { x: number; y: number } | null = null;
  private spinning = false;
  onPick: ((unit: Unit) => void) | null = null;
  units: Unit[] = [];
  opened: string | null = null;

  constructor(container: HTMLElement) {
    super(container, 45, 0.1, 10000);
    this.scene.add(new THREE.AmbientLight(0xffffff, 1.5));
    const sun = new THREE.DirectionalLight(0xffffff, 1.6);
    sun.position.set(-1, -2, 3);
    this.scene.add(sun);
    this.scene.add(this.group);
    const el = this.renderer.domElement;
    el.addEventListener("pointerdown", (e) => (this.down = { x: e.clientX, y: e.clientY }));
    el.addEventListener("pointerup", (e) => {
      if (this.down && Math.hypot(e.clientX - this.down.x, e.clientY - this.down.y) < 4) this.pick(e);
      this.down = null;
    });
    el.addEventListener("pointermove", (e) => {
      if (e.buttons) return;
      const hit = this.hitTest(e);
      this.note.textContent = hit ? `${hit.id}  ${hit.kind}  ${formatShape(hit.shape)}` : "drag to orbit, wheel to zoom, click a block to open it";
    });
    this.resize();
  }

  /** Rebuild the blocks; maps (layer id -> first maps of the current input) texture their faces. */
  build(units: Unit[], opened: string | null, maps: Map<string, Maps>, openedMaps: Maps | null, frozen: number[] = [], keepCamera = false): void {
    this.units = units;
    this.opened = opened;
    for (const { mesh } of this.blocks) {
      const mats = Array.isArray(mesh.material) ? mesh.material : [mesh.material];
      for (const m of new Set(mats)) {
        (m as THREE.MeshLambertMaterial).map?.dispose();
        m.dispose();
      }
      mesh.geometry.dispose();
    }
    this.group.clear();
    this.blocks = [];
    const maxSide = Math.max(1, ...units.map((u) => (u.shape && u.shape.length >= 2 ? u.shape[u.shape.length - 1] : 1)));
    let x = 0;
    let maxH = 1;
    for (const unit of units) {
      const isOpen = unit.id === opened && !unit.container && openedMaps !== null && openedMaps.count > 1;
      if (isOpen) {
        x += this.wall(unit, openedMaps!, frozen, x);
        continue;
      }
      const [sx, sy, sz] = blockSize(unit.shape, maxSide);
      maxH = Math.max(maxH, sy, sz);
      const color = CATEGORY_COLORS[unit.category] ?? CATEGORY_COLORS.other;
      const side = new THREE.MeshLambertMaterial({ color, transparent: unit.container, opacity: unit.container ? 0.75 : 1 });
      const mats: THREE.Material[] = [side, side, side, side, side, side];
      const m = maps.get(unit.layers[unit.layers.length - 1]);
      if (m && m.count > 0 && m.width * m.height > 1) {
        const tex = new THREE.CanvasTexture(mapCanvas(m, decodeBase64(m.data), 0));
        tex.magFilter = THREE.NearestFilter;
        tex.colorSpace = THREE.SRGBColorSpace;
        mats[0] = new THREE.MeshLambertMaterial({ map: tex, emissive: 0x222222 }); // +x face: the output
        mats[1] = mats[0];
      }
      const mesh = new THREE.Mesh(new THREE.BoxGeometry(sx, sy, sz), mats);
      mesh.position.set(x + sx / 2, 0, 0);
      mesh.userData.unit = unit.id;
      this.group.add(mesh);
      this.blocks.push({ mesh, unit });
      if (unit.id === opened) {
        const edges = new THREE.LineSegments(new THREE.EdgesGeometry(mesh.geometry), new THREE.LineBasicMaterial({ color: 0xff4fa3 }));
        edges.position.copy(mesh.position);
        this.group.add(edges);
      }
      x += sx + GAP;
    }
    if (!keepCamera) {
      const cx = x / 2;
      const span = Math.max(x, maxH * 3, 12);
      this.camera.position.set(cx - span * 0.25, -span * 0.75, span * 0.45);
      this.controls.target.set(cx, 0, 0);
      this.controls.update();
    }
    this.render();
  }

  /** An opened layer: its maps as planes in a square wall facing the camera's side. */
  private wall(unit: Unit, maps: Maps, frozen: number[], x0: number): number {
    const pixels = decodeBase64(maps.data);
    const n = Math.min(maps.count, MAX_PLANES);
    const cols = Math.ceil(Math.sqrt(n));
    const size = 1.6, gap = 0.25;
    const frozenSet = new Set(frozen);
    const geometry = new THREE.PlaneGeometry(size, size * (maps.height / Math.max(1, maps.width)));
    for (let f = 0; f < n; f++) {
      const tex = new THREE.CanvasTexture(mapCanvas(maps, pixels, f, "grey", frozenSet.has(f)));
      tex.magFilter = THREE.NearestFilter;
      tex.colorSpace = THREE.SRGBColorSpace;
      const mat = new THREE.MeshBasicMaterial({ map: tex, side: THREE.DoubleSide });
      const plane = new THREE.Mesh(geometry, mat);
      const col = f % cols, row = Math.floor(f / cols);
      // planes stand in the y-z plane, stepped a little along x like TensorSpace's open layers
      plane.rotation.set(Math.PI / 2, Math.PI / 2, 0);
      plane.position.set(x0 + col * 0.12, (col - (cols - 1) / 2) * (size + gap), ((cols - 1) / 2 - row) * (size + gap));
      plane.userData.unit = unit.id;
      this.group.add(plane);
      this.blocks.push({ mesh: plane as THREE.Mesh, unit });
    }
    return cols * 0.12 + 2 + GAP;
  }

  setSpin(on: boolean): void {
    this.spinning = on;
    this.controls.autoRotate = on;
    this.controls.autoRotateSpeed = 2.5;
    const tick = () => {
      if (!this.spinning) return;
      this.controls.update();
      this.render();
      requestAnimationFrame(tick);
    };
    if (on) requestAnimationFrame(tick);
  }

  /** Where a unit's block appears on screen (css px in the canvas), for tests and tooltips. */
  screenPosition(id: string): { x: number; y: number } | null {
    const b = this.blocks.find((b) => b.unit.id === id);
    if (!b) return null;
    const p = b.mesh.getWorldPosition(new THREE.Vector3()).project(this.camera);
    const el = this.renderer.domElement;
    return { x: ((p.x + 1) / 2) * el.clientWidth, y: ((1 - p.y) / 2) * el.clientHeight };
  }

  private hitTest(e: PointerEvent): Unit | null {
    const el = this.renderer.domElement;
    const r = el.getBoundingClientRect();
    const v = new THREE.Vector2(((e.clientX - r.left) / r.width) * 2 - 1, -((e.clientY - r.top) / r.height) * 2 + 1);
    this.raycaster.setFromCamera(v, this.camera);
    const hits = this.raycaster.intersectObjects(this.blocks.map((b) => b.mesh), false);
    if (!hits.length) return null;
    const id = hits[0].object.userData.unit as string;
    return this.blocks.find((b) => b.unit.id === id)?.unit ?? null;
  }

  private pick(e: PointerEvent): void {
    const unit = this.hitTest(e);
    if (unit) this.onPick?.(unit);
  }

  override dispose(): void {
    this.spinning = false;
    super.dispose();
  }
}
