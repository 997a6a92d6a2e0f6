// The server's REST and WebSocket API (convscope.server), with the page's token if it has one.
import { decodeFrame, decodeStream, type Frame } from "./frames";

const params = new URLSearchParams(location.search);
const urlToken = params.get("token");
if (urlToken) sessionStorage.setItem("convscope-token", urlToken);
const token = urlToken ?? sessionStorage.getItem("convscope-token");

export interface RunInfo {
  id: string;
  name: string;
  /** "interrupted": the server stopped while a monitor was streaming the run; it resumes as live if its training reconnects */
  status: "live" | "finished" | "failed" | "crashed" | "interrupted";
  started: number | null;
  updated: number | null;
  model: string | null;
  first_step: number | null;
  last_step: number | null;
  frames: number;
  /** drop totals by cause: "queue" or a sink ("store", "http") lost frames; "budget" counts recording steps deferred on purpose */
  dropped: Record<string, number>;
  /** the run at a glance, kept by its writer as running totals (absent from an older server) */
  summary?: RunSummary;
}

/** A scalar's value at the largest step it was logged at ("nan", "inf" or "-inf" where not finite). */
export interface LastValue {
  value: number | string;
  step: number;
}

/** A layer's gradient health: its last check, and how many of its checks were not healthy. */
export interface LayerHealth {
  status: string;
  step: number;
  flagged: number;
  checks: number;
}

/** A pruned layer's filters before its first pruning and after its last. */
export interface LayerFilters {
  before: number;
  after: number;
  prunings: number;
  first_step: number;
  step: number;
}

export interface RunSummary {
  /** each logged scalar's last value, by name */
  scalars: Record<string, LastValue>;
  /** each checked layer's gradient health, by layer */
  health: Record<string, LayerHealth>;
  /** each pruned layer's filters, by layer */
  filters: Record<string, LayerFilters>;
}

export interface RunDetails extends RunInfo {
  kinds: Record<string, number>;
  layers: string[];
  /** frames stored per series, by "kind:layer" (a read with maxPoints may be sent fewer of a long one) */
  counts?: Record<string, number>;
  thinned: Record<string, number>;
  meta: { config?: Record<string, any>; graph?: any };
}

export function withToken(path: string): string {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

/** The server answered a request with an error status (it is up: only the request failed). */
export class HttpError extends Error {
  constructor(readonly status: number, readonly detail: string) {
    super(`${status}: ${detail}`);
    this.name = "HttpError";
  }
}

async function get(path: string): Promise<Response> {
  const r = await fetch(withToken(path));
  if (!r.ok) {
    let detail = r.statusText;
    try {
      detail = (await r.json()).detail ?? detail;
    } catch {
      /* not JSON */
    }
    throw new HttpError(r.status, detail);
  }
  return r;
}

export async function listRuns(): Promise<RunInfo[]> {
  return (await get("api/runs")).json();
}

export async function getRun(run: string): Promise<RunDetails> {
  return (await get(`api/runs/${encodeURIComponent(run)}`)).json();
}

export interface FrameQuery {
  kind?: string[];
  layer?: string[];
  start?: number;
  end?: number;
  maxPoints?: number;
  latest?: boolean;
}

/** The header of a frames answer that names the last row of the run it was read up to. */
export const CURSOR_HEADER = "X-Convscope-Cursor";

/** The row id a frames answer's cursor header names (null: none, or not a row id this page can
 * hold exactly). */
export function parseCursor(header: string | null): number | null {
  if (header === null || !/^\d+$/.test(header.trim())) return null;
  const row = Number(header.trim());
  return Number.isSafeInteger(row) ? row : null;
}

/** Frames, and the cursor of the read: following the run with ``{ after: cursor }`` gives the
 * frames stored since, each once (none of them already among these). */
export interface FramesRead {
  frames: Frame[];
  cursor: number | null;
}

export async function getFrames(run: string, q: FrameQuery): Promise<Frame[]> {
  return (await readFrames(run, q)).frames;
}

export async function readFrames(run: string, q: FrameQuery): Promise<FramesRead> {
  const p = new URLSearchParams();
  for (const k of q.kind ?? []) p.append("kind", k);
  for (const l of q.layer ?? []) p.append("layer", l);
  if (q.start !== undefined) p.set("start", String(q.start));
  if (q.end !== undefined) p.set("end", String(q.end));
  if (q.maxPoints !== undefined) p.set("max_points", String(q.maxPoints));
  if (q.latest) p.set("latest", "true");
  const r = await get(`api/runs/${encodeURIComponent(run)}/frames?${p}`);
  return { frames: decodeStream(await r.arrayBuffer()), cursor: parseCursor(r.headers.get(CURSOR_HEADER)) };
}

function wsUrl(path: string): string {
  const base = new URL(path, location.href);
  base.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  return withToken(base.toString());
}

/** A WebSocket that reconnects a second after it drops, until the returned function is called. */
function reconnecting(
  path: string,
  onMessage: (ev: MessageEvent) => void,
  onOpen: (ws: WebSocket) => void,
  onConnection: (up: boolean) => void,
): () => void {
  let ws: WebSocket | null = null;
  let stopped = false;
  const open = () => {
    ws = new WebSocket(wsUrl(path));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      onConnection(true);
      onOpen(ws!);
    };
    ws.onmessage = onMessage;
    ws.onclose = () => {
      // (closed by the page, on leaving it: not the server going away)
      if (stopped) return;
      onConnection(false);
      setTimeout(() => {
        if (!stopped) open(); // (nor reopened once the page has left)
      }, 1000);
    };
  };
  open();
  return () => {
    stopped = true;
    ws?.close();
  };
}

/** What of a run to follow: only frames of these ``kinds`` (default: all); from the start, the
 * frames stored after row ``after`` too (the cursor of the page's read of the run: exactly what
 * was written since, none of it twice), or else after step ``since``. */
export interface FollowOptions {
  kinds?: string[];
  after?: number;
  since?: number;
}

/** The first message of a followed run's stream, on each connection: its kinds, that it wants the
 * server's cursors, and what it missed: the rows after ``row`` (a cursor: the read's, or the last
 * the stream gave), else the steps after the last one seen (``lastStep``), which may miss frames
 * of that step and of earlier steps written later. */
export function followMessage(options: FollowOptions, lastStep: number, row: number | undefined): FollowOptions & { cursors: true } {
  const message: FollowOptions & { cursors: true } = { cursors: true };
  if (options.kinds?.length) message.kinds = options.kinds; // (the server sends only these)
  if (row !== undefined) message.after = row;
  else if (lastStep >= 0) message.since = lastStep;
  return message;
}

/** Where a followed stream has got to: ``row``, a row id every frame up to which has come (the
 * read's cursor, then each ``{"type": "cursor"}`` message the server sends once its queue runs
 * dry), and the frames that came after it. A connection that goes on from ``row`` sends those
 * again (the server knows nothing of what a dropped connection delivered): they are known by their
 * bytes and passed over, so that every frame reaches the page once. */
export class StreamCursor {
  private after: ArrayBuffer[] = []; // the frames that came after ``row``
  private again: Map<number, ArrayBuffer[]> | null = null; // of those, the ones the connection may send again, by length

  constructor(public row: number | undefined = undefined) {}

  /** The server's cursor: every frame up to ``row`` has come. */
  moved(row: number): void {
    this.row = row;
    this.after = [];
    this.again = null;
  }

  /** A new connection, going on from ``row``: the frames that came after it will come again. */
  reconnected(): void {
    this.again = null;
    for (const data of this.after) {
      this.again ??= new Map();
      const same = this.again.get(data.byteLength);
      if (same) same.push(data);
      else this.again.set(data.byteLength, [data]);
    }
  }

  /** Whether ``data`` is a frame that came already (a new connection's replay of it), to pass over. */
  cameBefore(data: ArrayBuffer): boolean {
    const same = this.again?.get(data.byteLength);
    const i = same ? same.findIndex((d) => sameBytes(d, data)) : -1;
    if (i >= 0) {
      same!.splice(i, 1);
      return true;
    }
    if (this.row !== undefined) this.after.push(data);
    return false;
  }
}

function sameBytes(a: ArrayBuffer, b: ArrayBuffer): boolean {
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Follow a run: every new frame, and status changes; after a reconnect, what was missed, each
 * frame once (see StreamCursor). */
export function followRun(
  run: string,
  onFrame: (f: Frame) => void,
  onStatus: (status: string) => void,
  onConnection: (up: boolean) => void,
  options: FollowOptions = {},
): () => void {
  let lastStep = options.since ?? -1;
  const cursor = new StreamCursor(options.after);
  return reconnecting(
    `api/runs/${encodeURIComponent(run)}/live`,
    (ev) => {
      if (typeof ev.data === "string") {
        const msg = JSON.parse(ev.data);
        if (msg.type === "status") onStatus(msg.status);
        if (msg.type === "cursor" && Number.isSafeInteger(msg.row)) cursor.moved(msg.row);
        return;
      }
      if (cursor.cameBefore(ev.data as ArrayBuffer)) return;
      const { frame } = decodeFrame(ev.data as ArrayBuffer);
      lastStep = Math.max(lastStep, frame.step);
      onFrame(frame);
    },
    (ws) => {
      cursor.reconnected();
      ws.send(JSON.stringify(followMessage(options, lastStep, cursor.row)));
    },
    onConnection,
  );
}

/** Follow the list of runs: a message whenever a run appears or changes. */
export function followRuns(onRun: (r: RunInfo) => void, onConnection: (up: boolean) => void): () => void {
  return reconnecting(
    "api/live",
    (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "run") onRun(msg.run);
    },
    () => {},
    onConnection,
  );
}
