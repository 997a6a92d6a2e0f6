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

/** The first message of a followed run's stream, on each connection: its kinds, and what it
 * missed. ``after`` until a frame has come (till then nothing arrived that it could send again);
 * from then on the steps after the last one seen, which may miss frames of that step written
 * later: the stream's frames say no row id to go on from. */
export function followMessage(options: FollowOptions, lastStep: number, received: boolean): FollowOptions {
  const message: FollowOptions = {};
  if (options.kinds?.length) message.kinds = options.kinds; // (the server sends only these)
  if (options.after !== undefined && !received) message.after = options.after;
  else if (lastStep >= 0) message.since = lastStep;
  return message;
}

/** Follow a run: every new frame, and status changes; after a reconnect, what was missed. */
export function followRun(
  run: string,
  onFrame: (f: Frame) => void,
  onStatus: (status: string) => void,
  onConnection: (up: boolean) => void,
  options: FollowOptions = {},
): () => void {
  let lastStep = options.since ?? -1;
  let received = false;
  return reconnecting(
    `api/runs/${encodeURIComponent(run)}/live`,
    (ev) => {
      if (typeof ev.data === "string") {
        const msg = JSON.parse(ev.data);
        if (msg.type === "status") onStatus(msg.status);
        return;
      }
      const { frame } = decodeFrame(ev.data as ArrayBuffer);
      lastStep = Math.max(lastStep, frame.step);
      received = true;
      onFrame(frame);
    },
    (ws) => {
      const message = followMessage(options, lastStep, received);
      if (Object.keys(message).length) ws.send(JSON.stringify(message));
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
