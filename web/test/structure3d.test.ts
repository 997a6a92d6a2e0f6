// The 3-D structure's blocks: the faces that show a layer's map face the default camera, and show
// it upright and unmirrored from wherever the camera looks at them; so do an opened layer's planes.
import * as THREE from "three";
import { describe, expect, it } from "vitest";
import { PLANE } from "../src/views/explorer/keys";
import type { Maps } from "../src/views/explorer/client";
import type { Unit } from "../src/views/explorer/logic";
import { blockGeometry, faceSource, VIEW_DIR, wallPlane } from "../src/views/explorer/structure3d";

/** Where the corners of face ``face`` of ``geometry`` land on the screen of a camera at ``from``
 * (z up) looking at the block, with their texture coordinates; and whether it sees the face's front. */
function seen(geometry: THREE.BoxGeometry, face: number, from: [number, number, number]) {
  const camera = new THREE.PerspectiveCamera(45, 1, 0.1, 1000);
  camera.up.set(0, 0, 1);
  camera.position.set(...from).multiplyScalar(40 / Math.hypot(...from));
  camera.lookAt(0, 0, 0);
  camera.updateMatrixWorld();
  const { start, count } = geometry.groups[face];
  const at = geometry.attributes.position, uv = geometry.attributes.uv, normal = geometry.attributes.normal;
  const corners = [];
  for (let i = start; i < start + count; i++) {
    const k = geometry.index!.getX(i);
    const p = new THREE.Vector3(at.getX(k), at.getY(k), at.getZ(k)).project(camera);
    corners.push({ x: p.x, y: p.y, u: uv.getX(k), v: uv.getY(k) });
  }
  const k = geometry.index!.getX(start);
  const toCamera = camera.position.clone().sub(new THREE.Vector3(at.getX(k), at.getY(k), at.getZ(k)));
  const front = new THREE.Vector3(normal.getX(k), normal.getY(k), normal.getZ(k)).dot(toCamera) > 0;
  return { corners, front };
}

/** Whether the texture reads rightwards along the screen's x and upwards along its y. */
function upright(corners: { x: number; y: number; u: number; v: number }[]): boolean {
  const by = (key: "u" | "v") => [...corners].sort((a, b) => a[key] - b[key]);
  const u = by("u"), v = by("v");
  return u[u.length - 1].x > u[0].x && v[v.length - 1].y > v[0].y;
}

const cube: [number, number, number] = [3.2, 3.25, 3.25]; // a collapsed module: 256 channels of 2×2
// (round the block in eighths, between its faces' planes)
const orbit = Array.from({ length: 8 }, (_, i) => (i + 0.5) * (Math.PI / 4)).map((a) => [Math.cos(a), Math.sin(a), 0.45] as [number, number, number]);

describe("3-D structure blocks", () => {
  it("turn a collapsed module's thumbnail to the default camera: the face it faces most shows it", () => {
    const geometry = blockGeometry(cube, 1);
    const dir = new THREE.Vector3(...VIEW_DIR).normalize();
    const normals = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]];
    const facing = normals.map((n) => dir.dot(new THREE.Vector3(...n)));
    const most = facing.indexOf(Math.max(...facing));
    expect(most).toBe(3); // the -y side, which a layer's block leaves in its category's colour
    expect(seen(geometry, most, VIEW_DIR).front).toBe(true);
    expect(upright(seen(geometry, most, VIEW_DIR).corners)).toBe(true);
  });

  it("show every textured face upright and unmirrored, from the default camera and from all round", () => {
    for (const [size, aspect, faces] of [[cube, 1, [0, 1, 2, 3]], [[1.8, 6.4, 6.4], 0, [0, 1]]] as const) {
      const geometry = blockGeometry([...size], aspect);
      for (const from of [VIEW_DIR, ...orbit]) {
        for (const face of faces) {
          const view = seen(geometry, face, from);
          if (view.front) expect(upright(view.corners), `face ${face} from ${from}`).toBe(true);
        }
      }
    }
  });

  it("fit the map's middle to a module's side uncut-to-shape, not stretched to it", () => {
    const geometry = blockGeometry([3.2, 6.4, 6.4], 1); // sides half as wide as tall: the middle half of a square map
    const { corners } = seen(geometry, 3, VIEW_DIR);
    const span = (values: number[]) => [Math.min(...values), Math.max(...values)];
    const near = (got: number[], want: number[]) => got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 6));
    near(span(corners.map((c) => c.u)), [0.25, 0.75]);
    near(span(corners.map((c) => c.v)), [0, 1]);
    // the map faces themselves are the map's shape: all of it
    near(span(seen(geometry, 1, VIEW_DIR).corners.map((c) => c.u)), [0, 1]);
  });
});

describe("3-D structure faces", () => {
  const unit = (id: string, kind: string, container = false): Unit =>
    ({ id, kind, category: container ? "container" : kind === "input" ? "io" : "conv", shape: [1, 32, 32], layers: [id], container, depth: 0 });
  const map = (count: number, width: number, height: number): Maps => ({ count, total: count, width, height, data: "", vmin: [], vmax: [] });
  const conv1 = map(6, 28, 28);
  const maps = new Map([["conv1", conv1], ["features", map(1, 4, 4)], ["fc1", map(1, 1, 1)]]);
  const url = "/api/explorer/inputs/in1/image?model=m1";

  it("show the input drawn, as the model sees it, on the input slab; each layer's first map on its block", () => {
    expect(faceSource(unit("input", "input"), maps, url)).toEqual({ image: url });
    expect(faceSource(unit("conv1", "conv2d"), maps, url)).toEqual({ maps: conv1 });
    expect(faceSource(unit("features", "Sequential", true), maps, url)).toEqual({ maps: maps.get("features") });
  });

  it("leave plain what has nothing to show: the input slab with no input drawn, a layer of one value or none", () => {
    expect(faceSource(unit("input", "input"), maps, null)).toBeNull();
    expect(faceSource(unit("fc1", "linear"), maps, url)).toBeNull();
    expect(faceSource(unit("conv2", "conv2d"), maps, url)).toBeNull();
  });
});

describe("3-D structure of an opened layer", () => {
  it("turns its maps to the default camera, upright and unmirrored, map 0 first and left to right", () => {
    for (const [count, cols, aspect] of [[6, 3, 1], [16, 4, 1], [64, 8, 0.5]]) {
      const rows = Math.ceil(count / cols), x0 = 10;
      const geometry = new THREE.PlaneGeometry(PLANE, PLANE * aspect);
      const planes = Array.from({ length: count }, (_, f) => wallPlane(geometry, new THREE.MeshBasicMaterial(), f, cols, rows, x0, -3));
      const wall = new THREE.Box3();
      for (const p of planes) wall.expandByObject(p);
      const centre = wall.getCenter(new THREE.Vector3());
      const camera = new THREE.PerspectiveCamera(45, 1, 0.1, 1000);
      camera.up.set(0, 0, 1);
      camera.position.set(...VIEW_DIR).normalize().multiplyScalar(60).add(centre);
      camera.lookAt(centre);
      camera.updateMatrixWorld();
      const at = geometry.attributes.position, uv = geometry.attributes.uv;
      const onScreen = planes.map((plane, f) => {
        plane.updateMatrixWorld();
        const corners = Array.from({ length: at.count }, (_, k) => {
          const p = new THREE.Vector3(at.getX(k), at.getY(k), at.getZ(k)).applyMatrix4(plane.matrixWorld).project(camera);
          return { x: p.x, y: p.y, u: uv.getX(k), v: uv.getY(k) };
        });
        // its textured (front) face towards the camera, and not edge-on: within 45° of facing it
        const normal = new THREE.Vector3(0, 0, 1).transformDirection(plane.matrixWorld);
        const toCamera = camera.position.clone().sub(plane.getWorldPosition(new THREE.Vector3())).normalize();
        expect(normal.dot(toCamera), `map ${f} of ${count}`).toBeGreaterThan(Math.SQRT1_2);
        expect(upright(corners), `map ${f} of ${count}`).toBe(true);
        return plane.getWorldPosition(new THREE.Vector3()).project(camera);
      });
      // read as in the 2-D views: along a row left to right, rows top to bottom
      for (let f = 1; f < count; f++) {
        if (f % cols) expect(onScreen[f].x, `map ${f} of ${count}`).toBeGreaterThan(onScreen[f - 1].x);
        else expect(onScreen[f].y, `map ${f} of ${count}`).toBeLessThan(onScreen[f - cols].y);
      }
    }
  });
});
