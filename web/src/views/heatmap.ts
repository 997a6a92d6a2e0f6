// Correlation heatmap: Pearson correlation between the layer's filters, filters reordered so
// that each group is contiguous, groups outlined in their colours, dead filters hatched. Filter
// numbers along the edges, a colour scale beside it, the value of the cell under the pointer
// and the groups in words beneath. Filters go by their original numbers (before any pruning).
import { diverging, groupColor, outlineStrokes } from "../colors";
import type { Frame } from "../frames";
import { emptyState, fitCanvas } from "./canvas";
import { type FilterNames, filterName, numberingNote } from "./filterNumbers";
import { noun } from "./plural";

/** Where the parts of the heatmap go on a canvas ``width`` CSS pixels wide, for ``F`` filters. */
export interface HeatLayout {
  F: number;
  /** the matrix's top-left corner and its cell size */
  x0: number;
  y0: number;
  cell: number;
  size: number;
  /** the colour scale's left edge */
  barX: number;
  /** every how many filters a number is written along the left edge and along the top (where
   * numbers of several digits sit side by side, so they need more room) */
  labelEvery: number;
  columnEvery: number;
  height: number;
}

const MARGIN = 26; // room for the filter numbers
const BAR = 12; // the colour scale's width
const BAR_GAP = 12;
const BAR_TEXT = 26;

/** (``largest``: the largest number written along the edges, F - 1 unless the filters go by
 * their numbers before a pruning) */
export function heatLayout(F: number, width: number, largest = F - 1): HeatLayout {
  const room = Math.max(40, width - MARGIN - BAR_GAP - BAR - BAR_TEXT);
  const size = Math.min(room, 420);
  const cell = size / Math.max(F, 1);
  return {
    F, x0: MARGIN, y0: MARGIN, cell, size, barX: MARGIN + size + BAR_GAP,
    labelEvery: Math.max(1, Math.ceil(12 / cell)),
    columnEvery: Math.max(1, Math.ceil((String(Math.max(largest, F - 1, 0)).length * 6.5 + 4) / cell)),
    height: MARGIN + size + 4,
  };
}

/** The filters in display order: grouped ones first, by group id, each group contiguous. */
export function groupOrder(labels: ArrayLike<number>): number[] {
  const key = (i: number) => (labels[i] < 0 ? Infinity : labels[i]);
  return Array.from({ length: labels.length }, (_, i) => i).sort((a, b) => key(a) - key(b) || a - b);
}

/** The cell under CSS point (x, y): the row's and the column's filter numbers, or null. */
export function cellAt(layout: HeatLayout, order: number[], x: number, y: number): [number, number] | null {
  const i = Math.floor((y - layout.y0) / layout.cell);
  const j = Math.floor((x - layout.x0) / layout.cell);
  if (i < 0 || j < 0 || i >= layout.F || j >= layout.F || x < layout.x0 || y < layout.y0) return null;
  return [order[i], order[j]];
}

export interface GroupLine {
  id: number;
  filters: number[];
  /** the mean correlation of the group's pairs (NaN for a group of one) */
  meanR: number;
}

/** Each group with its filters and how alike they are (the mean of its pairs' correlations). */
export function groupLines(labels: ArrayLike<number>, matrix: ArrayLike<number>): GroupLine[] {
  const F = labels.length;
  const byId = new Map<number, number[]>();
  for (let i = 0; i < F; i++) if (labels[i] >= 0) byId.set(labels[i], [...(byId.get(labels[i]) ?? []), i]);
  return [...byId.entries()].sort(([a], [b]) => a - b).map(([id, filters]) => {
    let sum = 0, n = 0;
    for (let a = 0; a < filters.length; a++)
      for (let b = a + 1; b < filters.length; b++) {
        sum += matrix[filters[a] * F + filters[b]];
        n++;
      }
    return { id, filters, meanR: n ? sum / n : NaN };
  });
}

/** What the caption says of the cell of filters ``i`` and ``j`` (the matrix's indices; named
 * by their original numbers where ``names`` gives them). */
export function describeCell(i: number, j: number, matrix: ArrayLike<number>, F: number, labels: ArrayLike<number>, dead: ArrayLike<number> | null,
  names: FilterNames | null = null): string {
  const n = (k: number) => filterName(names, k);
  const deadOnes = [i, j].filter((k) => dead && dead[k]);
  if (deadOnes.length) return `filter ${n(deadOnes[0])} is dead (a constant map): no correlation`;
  if (i === j) return `filter ${n(i)}` + (labels[i] >= 0 ? `, in group ${labels[i]}` : ", in no group");
  const r = matrix[i * F + j];
  const same = labels[i] >= 0 && labels[i] === labels[j] ? `, both in group ${labels[i]}` : "";
  return `filters ${n(i)} and ${n(j)}: r = ${r.toFixed(3)}${same}`;
}

export class HeatmapView {
  /** where the matrix is drawn now (null before a correlation frame), and the filters in its order */
  layout: HeatLayout | null = null;
  order: number[] = [];
  /** the original numbers of the shown filters (null: the layer was not pruned by then) */
  names: FilterNames | null = null;
  private current: { corr: Frame; labels: number[] } | null = null;
  private hovered = false;

  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly caption: HTMLElement,
    private readonly legend: HTMLElement,
  ) {
    canvas.addEventListener("mousemove", (e) => this.hover(e.offsetX, e.offsetY));
    canvas.addEventListener("mouseleave", () => {
      this.hovered = false;
      this.writeCaption();
    });
  }

  /** The numbers along the edges, in display order (the filters' original numbers). */
  get edgeLabels(): number[] {
    return this.order.map((i) => filterName(this.names, i));
  }

  update(corr: Frame | undefined, groups: Frame | undefined, names: FilterNames | null = null): void {
    this.names = names;
    const width = Math.min(this.canvas.parentElement?.clientWidth || this.canvas.clientWidth || 300, 560);
    if (!corr) {
      this.current = this.layout = null;
      const ctx = fitCanvas(this.canvas, 200);
      emptyState(ctx, "no correlation frames yet");
      this.legend.replaceChildren();
      this.caption.textContent = "";
      return;
    }
    const m = corr.payload.matrix;
    const F = m.shape[0];
    const labels: number[] = groups && groups.payload.labels.shape[0] === F ? Array.from(groups.payload.labels.data as Int32Array) : new Array(F).fill(-1);
    const layout = heatLayout(F, width, names ? Math.max(...names.numbers) : F - 1);
    this.layout = layout;
    this.order = groupOrder(labels);
    this.current = { corr, labels };
    this.canvas.style.width = `${width}px`;
    const ctx = fitCanvas(this.canvas, layout.height);
    ctx.clearRect(0, 0, width, layout.height);
    this.drawMatrix(ctx, m.data, this.deadOf(corr));
    this.drawGroups(ctx, labels);
    this.drawLabels(ctx);
    this.drawScale(ctx);
    this.writeLegend(labels, m.data, groups);
    if (!this.hovered) this.writeCaption();
  }

  private deadOf(corr: Frame): ArrayLike<number> | null {
    const dead = corr.payload.dead;
    return dead && dead.shape[0] === corr.payload.matrix.shape[0] ? (dead.data as ArrayLike<number>) : null;
  }

  private drawMatrix(ctx: CanvasRenderingContext2D, data: ArrayLike<number>, dead: ArrayLike<number> | null): void {
    const { F, x0, y0, cell, size } = this.layout!;
    const order = this.order;
    const img = ctx.createImageData(F, F);
    for (let i = 0; i < F; i++) {
      for (let j = 0; j < F; j++) {
        const [r, g, b] = diverging(data[order[i] * F + order[j]]);
        const p = (i * F + j) * 4;
        img.data[p] = r * 255;
        img.data[p + 1] = g * 255;
        img.data[p + 2] = b * 255;
        img.data[p + 3] = 255;
      }
    }
    const tmp = document.createElement("canvas");
    tmp.width = F;
    tmp.height = F;
    tmp.getContext("2d")!.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, x0, y0, size, size);
    if (!dead) return;
    // a dead filter's row and column hatched: its correlation is undefined, not 0
    ctx.save();
    ctx.beginPath();
    ctx.rect(x0, y0, size, size);
    ctx.clip();
    ctx.strokeStyle = "rgba(40, 44, 52, 0.55)";
    ctx.lineWidth = 1;
    for (let k = 0; k < F; k++) {
      if (!dead[order[k]]) continue;
      for (const [bx, by, bw, bh] of [[x0, y0 + k * cell, size, cell], [x0 + k * cell, y0, cell, size]]) {
        ctx.beginPath();
        for (let t = -bh; t < bw; t += 5) {
          ctx.moveTo(bx + t, by + bh);
          ctx.lineTo(bx + t + bh, by);
        }
        ctx.stroke();
      }
    }
    ctx.restore();
  }

  private drawGroups(ctx: CanvasRenderingContext2D, labels: number[]): void {
    const { F, x0, y0, cell } = this.layout!;
    let start = 0;
    while (start < F) {
      const g = labels[this.order[start]];
      let end = start;
      while (end + 1 < F && labels[this.order[end + 1]] === g) end++;
      if (g >= 0) {
        // the group's colour over a wider dark halo: it stays visible on cells of its own
        // colour (group 0's red on the red of high correlation) and on every other
        const side = (end - start + 1) * cell - 3;
        for (const { color, width } of outlineStrokes(groupColor(g))) {
          ctx.strokeStyle = color;
          ctx.lineWidth = width;
          ctx.strokeRect(x0 + start * cell + 1.5, y0 + start * cell + 1.5, side, side);
        }
      }
      start = end + 1;
    }
  }

  private drawLabels(ctx: CanvasRenderingContext2D): void {
    const { F, x0, y0, cell, labelEvery, columnEvery } = this.layout!;
    ctx.fillStyle = "#8a8f98";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let k = 0; k < F; k += labelEvery) ctx.fillText(String(filterName(this.names, this.order[k])), x0 - 4, y0 + (k + 0.5) * cell);
    ctx.textAlign = "center";
    for (let k = 0; k < F; k += columnEvery) ctx.fillText(String(filterName(this.names, this.order[k])), x0 + (k + 0.5) * cell, y0 - 9);
    ctx.textAlign = "start";
    ctx.textBaseline = "alphabetic";
  }

  private drawScale(ctx: CanvasRenderingContext2D): void {
    const { barX, y0, size } = this.layout!;
    const steps = 64;
    for (let s = 0; s < steps; s++) {
      const [r, g, b] = diverging(1 - (2 * (s + 0.5)) / steps);
      ctx.fillStyle = `rgb(${r * 255}, ${g * 255}, ${b * 255})`;
      ctx.fillRect(barX, y0 + (s * size) / steps, BAR, size / steps + 0.5);
    }
    ctx.strokeStyle = "#3a3f47";
    ctx.strokeRect(barX, y0, BAR, size);
    ctx.fillStyle = "#8a8f98";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (const [t, text] of [[0, "+1"], [0.5, "0"], [1, "−1"]] as const) ctx.fillText(text, barX + BAR + 4, y0 + t * size);
    ctx.textBaseline = "alphabetic";
    ctx.save();
    ctx.translate(barX + BAR / 2, y0 - 9);
    ctx.textAlign = "center";
    ctx.fillText("r", 0, 0);
    ctx.restore();
  }

  private writeLegend(labels: number[], matrix: ArrayLike<number>, groups: Frame | undefined): void {
    const lines = groupLines(labels, matrix);
    const rows = lines.map(({ id, filters, meanR }) => {
      const row = document.createElement("div");
      row.className = "group-line";
      row.style.borderLeftColor = groupColor(id);
      row.textContent = `group ${id}: filters ${filters.map((i) => filterName(this.names, i)).join(", ")}` + (Number.isNaN(meanR) ? "" : ` (mean r ${meanR.toFixed(2)})`);
      return row;
    });
    const grouped = lines.reduce((n, l) => n + l.filters.length, 0);
    const rule = groups ? ` at r ≥ ${Number(groups.payload.threshold).toFixed(2)} (${groups.payload.method})` : "";
    const head = document.createElement("div");
    head.textContent = lines.length
      ? `${lines.length} ${noun(lines.length, "group")} of similar filters${rule}; ${labels.length - grouped} of ${labels.length} filters in none`
      : `no group of similar filters${rule}`;
    this.legend.replaceChildren(head, ...rows);
  }

  private hover(x: number, y: number): void {
    if (!this.layout || !this.current) return;
    const cell = cellAt(this.layout, this.order, x, y);
    this.hovered = cell !== null;
    if (!cell) return this.writeCaption();
    const { corr, labels } = this.current;
    this.caption.textContent = describeCell(cell[0], cell[1], corr.payload.matrix.data, this.layout.F, labels, this.deadOf(corr), this.names);
  }

  private writeCaption(): void {
    const numbering = numberingNote(this.names);
    this.caption.textContent = this.current
      ? `${this.layout!.F} filters in group order; point at a cell for its correlation` + (numbering ? `; ${numbering}` : "") : "";
  }
}
