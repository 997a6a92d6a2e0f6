// The 3-D structure view, after TensorSpace: one block per layer (or collapsed container) along x,
// sized by its output shape, its front face showing the layer's first feature map for the current
// input (the input slab: the input itself, as the model sees it); an opened layer becomes a wall of
// planes, one per feature map. Drag to orbit, wheel to zoom, "spin" to turn; click a block to open
// it (a container expands). Each block is labelled with its layer's name (those that would overlap
// another hide; hovering one shows its label and says its kind and shape), a legend says what the
// colours mean, and the camera frames the whole model.
import * as THREE from "three";
import { ThreeView, type Vec } from "../three";
import type { Maps } from "./client";
import { loadImage } from "./inputImages";
import { colorOf, cssColor, layoutUnits, legendEntries, type LabelSpot, type Placed, placeLabels, PLANE, PLANE_GAP, shortLabel } from "./keys";
import { decodeBase64, formatShape, type Unit } from "./logic";
import { mapCanvas } from "./maps";

// The camera looks from the front-left, a little above (z up), at the whole model. (From that
// side, not the outputs' (+x): there a layer would hide behind the activation after it, as large.)
export const VIEW_DIR: Vec = [-0.25, -0.75, 0.45];

/** What the note under the view says while no block is pointed at. */
const HOW = "drag to orbit, wheel to zoom, double-click to fit, click a block to open it";

/** A block of ``size`` whose map faces show the map upright (its top towards +z) and unmirrored,
 * seen from outside each: the ±x faces (the output's width along y, its height along z), and given
 * ``aspect`` (the map's width over its height: a collapsed module's thumbnail) the ±y faces too,
 * which the default camera faces. */
export function blockGeometry(size: Vec, aspect = 0): THREE.BoxGeometry {
  const geometry = new THREE.BoxGeometry(...size);
  const index = geometry.index!, at = geometry.attributes.position, uv = geometry.attributes.uv;
  // three lays a box's textures out for a y-up world (the ±x faces' on their side); here z is up.
  // Each face: its material index, the axis its width runs along, and that axis's sign rightwards.
  const faces: [number, number, number][] = [[0, 1, 1], [1, 1, -1]];
  if (aspect) faces.push([2, 0, -1], [3, 0, 1]);
  for (const [face, axis, right] of faces) {
    const { start, count } = geometry.groups[face];
    // (the ±y faces show the map's middle, as much of it as fits their shape: not stretched to it)
    const shape = size[axis] / size[2];
    const [su, sv] = face < 2 ? [1, 1] : shape < aspect ? [shape / aspect, 1] : [1, aspect / shape];
    for (let i = start; i < start + count; i++) {
      const k = index.getX(i);
      const along = axis === 0 ? at.getX(k) : at.getY(k);
      uv.setXY(k, 0.5 + (su * right * along) / size[axis], 0.5 + (sv * at.getZ(k)) / size[2]);
    }
  }
  return geometry;
}

/** What `StructureView.build` draws besides the blocks (see there). */
export interface BuildOptions {
  openedMaps?: Maps | null;
  frozen?: number[];
  keepCamera?: boolean;
  inputImage?: string | null;
}

/** What a unit's block shows on its map faces: the first map of its (last) layer's output, or, for
 * the model's input (whose output the page's layer outputs leave out), the input image at
 * ``inputImage`` (its URL, as the model sees it) where one is drawn; null: none, plain sides. */
export function faceSource(unit: Unit, maps: Map<string, Maps>, inputImage: string | null): { image: string } | { maps: Maps } | null {
  if (inputImage && !unit.container && unit.kind === "input") return { image: inputImage };
  const m = maps.get(unit.layers[unit.layers.length - 1]);
  return m && m.count > 0 && m.width * m.height > 1 ? { maps: m } : null;
}

/** ``tex`` set to show a map's pixels as they are (not smoothed, sRGB). */
function pixelated<T extends THREE.Texture>(tex: T): T {
  tex.magFilter = THREE.NearestFilter;
  tex.colorSpace = THREE.SRGBColorSpace;
  return tex;
}

/** The material of a block's map faces, showing ``tex``. */
function mapMaterial(tex: THREE.Texture): THREE.MeshLambertMaterial {
  return new THREE.MeshLambertMaterial({ map: pixelated(tex), emissive: 0x222222 });
}

/** Map ``f`` of an opened layer's wall (``cols`` across, ``rows`` down, from ``x0``, at ``y0``) as a plane. */
export function wallPlane(geometry: THREE.PlaneGeometry, material: THREE.Material, f: number, cols: number, rows: number, x0: number, y0 = 0): THREE.Mesh {
  const plane = new THREE.Mesh(geometry, material);
  const col = f % cols, row = Math.floor(f / cols), step = PLANE + PLANE_GAP;
  // planes stand in the x-z plane facing -y, the side the default camera looks from (VIEW_DIR):
  // rows read left to right along x as in the 2-D views, upright (the plane's +y turned to +z).
  // (Facing +x, along the model, they were seen edge-on and from behind: mirrored.)
  plane.rotation.set(Math.PI / 2, 0, 0);
  plane.position.set(x0 + PLANE / 2 + col * step, y0, ((rows - 1) / 2 - row) * step);
  return plane;
}

export class StructureView extends ThreeView {
  private group = new THREE.Group();
  private blocks: { mesh: THREE.Mesh; unit: Unit }[] = [];
  private raycaster = new THREE.Raycaster();
  private down: { x: number; y: number } | null = null;
  private spinning = false;
  /** the layers' names over the canvas (one per unit; those that would overlap another are hidden) */
  private labels = document.createElement("div");
  private labelOf = new Map<string, { el: HTMLElement; top: THREE.Vector3; bottom: THREE.Vector3; priority: number; w: number; h: number }>();
  private hovered: string | null = null;
  /** the input image's texture, kept across rebuilds (null until it has loaded) */
  private input: { url: string; tex: THREE.Texture | null } | null = null;
  /** the key of the block colours, under the canvas (set by the page: legend.el) */
  readonly legend = document.createElement("div");
  onPick: ((unit: Unit) => void) | null = null;
  /** How the input slab's image is loaded (the page shares it with the input panel: InputImages). */
  loadImage: (url: string) => Promise<HTMLImageElement> = loadImage;
  units: Unit[] = [];
  opened: string | null = null;

  constructor(container: HTMLElement) {
    super(container, 45, 0.1, 10000);
    this.scene.add(new THREE.AmbientLight(0xffffff, 1.5));
    const sun = new THREE.DirectionalLight(0xffffff, 1.6);
    sun.position.set(-1, -2, 3);
    this.scene.add(sun);
    this.scene.add(this.group);
    this.labels.className = "block-labels";
    container.appendChild(this.labels);
    this.legend.className = "structure-legend small";
    const el = this.renderer.domElement;
    el.addEventListener("pointerdown", (e) => (this.down = { x: e.clientX, y: e.clientY }));
    el.addEventListener("pointerup", (e) => {
      if (this.down && Math.hypot(e.clientX - this.down.x, e.clientY - this.down.y) < 4) this.pick(e);
      this.down = null;
    });
    el.addEventListener("pointermove", (e) => {
      if (e.buttons) return;
      const hit = this.hitTest(e);
      this.note.textContent = hit ? `${hit.id}  ${hit.kind}  ${formatShape(hit.shape)}` : HOW;
      el.style.cursor = hit ? "pointer" : "";
      if ((hit?.id ?? null) !== this.hovered) {
        this.hovered = hit?.id ?? null;
        this.placeLabels();
      }
    });
    el.addEventListener("pointerleave", () => {
      // (the note named the block last pointed at: gone with the pointer, not left naming another layer than the one opened)
      this.note.textContent = HOW;
      if (this.hovered === null) return;
      this.hovered = null;
      this.placeLabels();
    });
    this.note.textContent = HOW;
    this.resize();
  }

  /** Rebuild the blocks; maps (layer id -> first maps of the current input) texture their faces.
   * ``opened``'s maps (``openedMaps``) stand as a wall, ``frozen`` ones marked; ``inputImage`` (the
   * current input as the model sees it) textures the input slab; ``keepCamera`` leaves the view. */
  build(units: Unit[], opened: string | null, maps: Map<string, Maps>, options: BuildOptions = {}): void {
    const { openedMaps = null, frozen = [], keepCamera = false, inputImage = null } = options;
    this.units = units;
    this.opened = opened;
    for (const { mesh } of this.blocks) {
      const mats = Array.isArray(mesh.material) ? mesh.material : [mesh.material];
      for (const m of new Set(mats)) {
        const map = (m as THREE.MeshLambertMaterial).map;
        if (map !== this.input?.tex) map?.dispose();
        m.dispose();
      }
      mesh.geometry.dispose();
    }
    this.group.clear();
    this.blocks = [];
    const { placed, bounds } = layoutUnits(units, opened, openedMaps);
    for (const { unit, x, size, wall } of placed) {
      if (wall && openedMaps) {
        this.wall(unit, openedMaps, frozen, x, wall.y, wall.cols, wall.count);
        continue;
      }
      const color = colorOf(unit.category);
      const side = new THREE.MeshLambertMaterial({ color, transparent: unit.container, opacity: unit.container ? 0.75 : 1 });
      const mats: THREE.Material[] = [side, side, side, side, side, side];
      const source = faceSource(unit, maps, inputImage);
      let thumb = 0; // (a collapsed module's: its map's width over its height)
      if (source && "image" in source) {
        const tex = this.inputTexture(source.image);
        if (tex) mats[0] = mats[1] = mapMaterial(tex);
      } else if (source) {
        const m = source.maps;
        mats[0] = mapMaterial(new THREE.CanvasTexture(mapCanvas(m, decodeBase64(m.data), 0))); // +x face: the output
        mats[1] = mats[0];
        // a collapsed module's thumbnail on the sides the camera faces too: its map faces, seen
        // aslant and deep apart (its many channels), show little of it
        if (unit.container && m.units == null) {
          mats[2] = mats[3] = mats[0];
          thumb = m.width / m.height;
        }
      }
      const mesh = new THREE.Mesh(blockGeometry(size, thumb), mats);
      mesh.position.set(x + size[0] / 2, 0, 0);
      mesh.userData.unit = unit.id;
      this.group.add(mesh);
      this.blocks.push({ mesh, unit });
      if (unit.id === opened) {
        const edges = new THREE.LineSegments(new THREE.EdgesGeometry(mesh.geometry), new THREE.LineBasicMaterial({ color: 0xff4fa3 }));
        edges.position.copy(mesh.position);
        this.group.add(edges);
      }
    }
    this.buildLabels(placed, opened);
    this.buildLegend(units);
    if (!keepCamera || !this.fitted) {
      // the whole model in view, the input slab included; a little room above and below for the labels
      const pad = Math.max(1, (bounds.max[2] - bounds.min[2]) * 0.12);
      this.fitTo({ min: [bounds.min[0], bounds.min[1], bounds.min[2] - pad], max: [bounds.max[0], bounds.max[1], bounds.max[2] + pad] }, VIEW_DIR);
    }
    this.render();
  }

  /** The input image's texture once loaded (then shown on the input slab, rebuilt or not); null before. */
  private inputTexture(url: string): THREE.Texture | null {
    if (this.input?.url === url) return this.input.tex;
    this.input?.tex?.dispose();
    const entry: { url: string; tex: THREE.Texture | null } = { url, tex: null };
    this.input = entry;
    this.loadImage(url).then((image) => {
      if (this.input !== entry) return; // another input drawn since
      const tex = new THREE.Texture(image);
      tex.needsUpdate = true;
      entry.tex = tex;
      const block = this.blocks.find((b) => faceSource(b.unit, new Map(), url));
      if (!block || !Array.isArray(block.mesh.material)) return; // (none, or opened: a wall)
      block.mesh.material[0] = block.mesh.material[1] = mapMaterial(tex);
      this.render();
    }, () => {}); // (not loaded: the slab keeps plain sides; the input panel says why)
    return null;
  }

  /** One label per unit, at the middle of its block's top (and bottom, where the top has no room). */
  private buildLabels(placed: Placed[], opened: string | null): void {
    this.labels.innerHTML = "";
    this.labelOf.clear();
    for (const { unit, x, size, wall } of placed) {
      const el = document.createElement("span");
      el.className = `block-label${unit.container ? " container" : ""}${unit.id === opened ? " opened" : ""}`;
      el.textContent = shortLabel(unit.id);
      el.dataset.unit = unit.id;
      el.style.borderColor = cssColor(colorOf(unit.category));
      this.labels.appendChild(el);
      const cx = x + size[0] / 2;
      const priority = unit.id === opened ? 4 : unit.category === "io" ? 3 : ["conv", "dense", "container"].includes(unit.category) ? 2 : unit.category === "pool" ? 1 : 0;
      this.labelOf.set(unit.id, {
        el, top: new THREE.Vector3(cx, wall?.y ?? 0, size[2] / 2), bottom: new THREE.Vector3(cx, wall?.y ?? 0, -size[2] / 2), priority, w: el.offsetWidth, h: el.offsetHeight,
      });
    }
  }

  /** Place the labels for the camera as it is now (called on every render). */
  private placeLabels(): void {
    const el = this.renderer.domElement;
    const W = el.clientWidth, H = el.clientHeight;
    if (!W || !H) return;
    const spots: LabelSpot[] = [];
    const project = (v: THREE.Vector3) => {
      const p = v.clone().project(this.camera);
      return { x: ((p.x + 1) / 2) * W, y: ((1 - p.y) / 2) * H, behind: p.z > 1 };
    };
    for (const [id, l] of this.labelOf) {
      if (!l.w) {
        l.w = l.el.offsetWidth;
        l.h = l.el.offsetHeight;
      }
      const a = project(l.top), b = project(l.bottom);
      if (a.behind || b.behind) continue;
      spots.push({
        id, x: (a.x + b.x) / 2, top: Math.min(a.y, b.y), bottom: Math.max(a.y, b.y), width: l.w || 8 * id.length, height: l.h || 14,
        priority: id === this.hovered ? 10 : l.priority,
      });
    }
    const spotsAt = placeLabels(spots, { width: W, height: H });
    for (const [id, l] of this.labelOf) {
      const at = spotsAt.get(id);
      l.el.hidden = !at;
      l.el.classList.toggle("hovered", id === this.hovered);
      if (at) l.el.style.transform = `translate(${Math.round(at.x)}px, ${Math.round(at.y)}px)`;
    }
  }

  private buildLegend(units: Unit[]): void {
    this.legend.innerHTML = "";
    const entries = legendEntries(units);
    if (!entries.length) return;
    const head = document.createElement("span");
    head.className = "muted";
    head.textContent = "block colours:";
    this.legend.appendChild(head);
    for (const e of entries) {
      const item = document.createElement("span");
      item.className = "legend-item";
      item.dataset.category = e.category;
      const sw = document.createElement("i");
      sw.className = "swatch bar";
      sw.style.background = e.color;
      item.append(sw, document.createTextNode(e.label));
      this.legend.appendChild(item);
    }
    const tail = document.createElement("span");
    tail.className = "muted";
    tail.textContent = "· size: output shape · front face: its first map for the input shown";
    this.legend.appendChild(tail);
  }

  override render(): void {
    super.render();
    if (this.labelOf) this.placeLabels();
  }

  /** An opened layer: its maps as planes in a wall facing the camera's side. */
  private wall(unit: Unit, maps: Maps, frozen: number[], x0: number, y0: number, cols: number, n: number): void {
    const pixels = decodeBase64(maps.data);
    const size = PLANE;
    const frozenSet = new Set(frozen);
    const geometry = new THREE.PlaneGeometry(size, size * (maps.height / Math.max(1, maps.width)));
    for (let f = 0; f < n; f++) {
      const tex = pixelated(new THREE.CanvasTexture(mapCanvas(maps, pixels, f, "grey", frozenSet.has(f))));
      const plane = wallPlane(geometry, new THREE.MeshBasicMaterial({ map: tex, side: THREE.DoubleSide }), f, cols, Math.ceil(n / cols), x0, y0);
      plane.userData.unit = unit.id;
      this.group.add(plane);
      this.blocks.push({ mesh: plane as THREE.Mesh, unit });
    }
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

  /** The screen box (css px in the canvas) around all of a unit's block (or wall), for tests. */
  screenBox(id: string): { left: number; top: number; right: number; bottom: number } | null {
    const meshes = this.blocks.filter((b) => b.unit.id === id).map((b) => b.mesh);
    if (!meshes.length) return null;
    const box = new THREE.Box3();
    for (const m of meshes) box.expandByObject(m);
    const el = this.renderer.domElement;
    const out = { left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity };
    for (const x of [box.min.x, box.max.x]) for (const y of [box.min.y, box.max.y]) for (const z of [box.min.z, box.max.z]) {
      const p = new THREE.Vector3(x, y, z).project(this.camera);
      const sx = ((p.x + 1) / 2) * el.clientWidth, sy = ((1 - p.y) / 2) * el.clientHeight;
      out.left = Math.min(out.left, sx);
      out.right = Math.max(out.right, sx);
      out.top = Math.min(out.top, sy);
      out.bottom = Math.max(out.bottom, sy);
    }
    return out;
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
    this.input?.tex?.dispose();
    this.input = null;
    super.dispose();
  }
}
