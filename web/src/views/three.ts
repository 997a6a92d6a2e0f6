// What the 3-D views share: a renderer that keeps its pixels (so tests can read them), a
// camera with orbit controls that redraws on demand, a caption, and resizing with the panel.
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";

export class ThreeView {
  readonly renderer: THREE.WebGLRenderer;
  protected scene = new THREE.Scene();
  protected camera: THREE.PerspectiveCamera;
  protected controls: OrbitControls;
  protected note: HTMLElement;

  constructor(protected container: HTMLElement, fov: number, near: number, far: number) {
    this.camera = new THREE.PerspectiveCamera(fov, 1, near, far);
    this.camera.up.set(0, 0, 1);
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(window.devicePixelRatio || 1);
    this.renderer.setClearColor(0x15181d);
    container.appendChild(this.renderer.domElement);
    this.note = document.createElement("div");
    this.note.className = "view-note";
    container.appendChild(this.note);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.addEventListener("change", () => this.render());
    new ResizeObserver(() => this.resize()).observe(container);
  }

  protected resize(): void {
    const w = this.container.clientWidth || 400, h = this.container.clientHeight || 300;
    this.renderer.setSize(w, h);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
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
