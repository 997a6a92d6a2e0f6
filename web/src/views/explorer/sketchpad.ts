// A sketchpad to draw an input (a digit for MNIST models): white ink on black, drawn with the mouse
// or a finger; the drawing is sent as a PNG and framed like MNIST by the server.
export class Sketchpad {
  private ctx: CanvasRenderingContext2D;
  private drawing = false;
  private last: { x: number; y: number } | null = null;
  strokes = 0;

  constructor(readonly canvas: HTMLCanvasElement, private size = 196) {
    canvas.width = size;
    canvas.height = size;
    this.ctx = canvas.getContext("2d")!;
    this.clear();
    canvas.addEventListener("pointerdown", (e) => {
      this.drawing = true;
      this.last = this.point(e);
      this.dot(this.last);
      canvas.setPointerCapture?.(e.pointerId);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!this.drawing) return;
      const p = this.point(e);
      this.line(this.last ?? p, p);
      this.last = p;
    });
    const end = () => {
      if (this.drawing) this.strokes++;
      this.drawing = false;
      this.last = null;
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointerleave", end);
  }

  clear(): void {
    this.ctx.fillStyle = "#000";
    this.ctx.fillRect(0, 0, this.size, this.size);
    this.strokes = 0;
  }

  private point(e: PointerEvent): { x: number; y: number } {
    const r = this.canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) / r.width) * this.size, y: ((e.clientY - r.top) / r.height) * this.size };
  }

  private dot(p: { x: number; y: number }): void {
    this.ctx.fillStyle = "#fff";
    this.ctx.beginPath();
    this.ctx.arc(p.x, p.y, this.size / 22, 0, Math.PI * 2);
    this.ctx.fill();
  }

  private line(a: { x: number; y: number }, b: { x: number; y: number }): void {
    const ctx = this.ctx;
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = this.size / 11;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  }

  toBlob(): Promise<Blob> {
    return new Promise((resolve, reject) => this.canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("empty sketch"))), "image/png"));
  }
}
