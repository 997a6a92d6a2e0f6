// The model explorer's API (/api/explorer, convscope.server._explorer): the page is one client of it.
import { withToken } from "../../api";
import { detailText } from "./logic";

export interface Maps {
  count: number;
  total: number;
  width: number;
  height: number;
  data: string; // base64 of count x height x width uint8
  vmin: number[];
  vmax: number[];
  units?: number | null; // dense layers: one map of this many units, row-major
}

export interface GraphLayer {
  id: string;
  kind: string;
  type: string;
  category: string;
  output_shape: number[] | null;
  params: number;
  parent: string | null;
  hookable: boolean;
}

export interface GraphContainer {
  id: string;
  type: string;
  parent: string | null;
  children: string[];
}

export interface Graph {
  layers: GraphLayer[];
  edges: [string, string][];
  containers: GraphContainer[];
}

export interface ModelInfo {
  id: string;
  name: string;
  format: string;
  source: string;
  origin: string;
  layers: number;
  params: number;
  input_spec: { shape: number[]; class_names: string[] | null };
  freeze: Record<string, number[]>;
}

export interface ModelDetails extends ModelInfo {
  graph: Graph;
  observable: string[];
  sample_sets: string[];
}

export interface InputInfo {
  id: string;
  name: string;
  kind: string;
  shape: number[];
  steps: { op: string; text: string }[];
  label: number | null;
  parent: string | null;
  adversarial: {
    attack: string;
    params: Record<string, unknown>;
    original_prediction: number;
    original_name: string;
    prediction: number;
    prediction_name: string;
    success: boolean;
    l2: number;
    linf: number;
    model: string;
    target: number | null;
    /** the model's freeze set when the attack ran: the attack ran on the model without it */
    freeze: Record<string, number[]>;
    /** predictions of the original and the result with that freeze set (what the Prediction panel shows) */
    with_freeze: { original_prediction: number; original_name: string; prediction: number; prediction_name: string } | null;
  } | null;
}

export interface SessionInfo {
  trust: boolean;
  limits: Record<string, number>;
  models: ModelInfo[];
  inputs: InputInfo[];
  /** per attack: its parameters' defaults and what each does, whether it takes a target, what it does */
  attacks: Record<string, { defaults: Record<string, number | null>; params?: Record<string, string>; targeted: boolean; about: string }>;
  saliency_methods: string[];
  zoo: string[];
}

export interface Prediction {
  predicted: number;
  predicted_name: string;
  classes: number;
  top: { index: number; name: string; probability: number }[];
}

export interface LayerOutput {
  layer: string;
  kind: string;
  category: string;
  shape: number[];
  stats: { min: number | null; max: number | null; mean: number | null; std: number | null; zeros: number };
  frozen: number[];
  maps: Maps;
}

export interface Outputs {
  model: string;
  input: string;
  layers: LayerOutput[];
  prediction: Prediction;
  freeze: Record<string, number[]>;
}

export interface Comparison {
  model: string;
  a: string;
  b: string;
  diverges_at: string | null;
  threshold: number;
  layers: { layer: string; l2: number | null; cosine: number | null; relative: number | null; top_filters: number[] }[];
  maps: { layer: string; shape: number[]; a: Maps; b: Maps; diff: Maps }[];
  prediction_a: Prediction;
  prediction_b: Prediction;
}

export interface Saliency {
  method: string;
  layer: string | null;
  target: number;
  target_name: string;
  width: number;
  height: number;
  data: string;
}

const BASE = "api/explorer";

/** A refused request: its message is the server's sentence (no "Error: 422:" to read past), its status apart. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "ApiError";
  }
}

/** What went wrong, for a person: the server's sentence for a refused request, else the error's message. */
export function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The error of a refused request, in the server's words where it gave them. */
async function refusal(r: Response): Promise<ApiError> {
  let detail: unknown;
  try {
    detail = (await r.json()).detail;
  } catch {
    /* not JSON */
  }
  return new ApiError(r.status, detailText(detail, `${r.status} ${r.statusText}`.trim()));
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  const r = await fetch(withToken(`${BASE}${path}`), init);
  if (!r.ok) throw await refusal(r);
  if (r.status === 204) return undefined as T;
  return r.json() as Promise<T>;
}

/** The image at ``url`` (an ``imageUrl``), fetched, as a blob: URL (see InputImages). */
export async function fetchImage(url: string): Promise<string> {
  const r = await fetch(url);
  if (!r.ok) throw await refusal(r);
  return URL.createObjectURL(await r.blob());
}

const json = (method: string, body: unknown): RequestInit => ({
  method,
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(body),
});
const raw = (body: Blob | ArrayBuffer): RequestInit => ({
  method: "POST",
  headers: { "Content-Type": "application/octet-stream" },
  body,
});
const q = (params: Record<string, string | number | undefined | string[]>): string => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
    else p.set(k, String(v));
  }
  return p.toString();
};

export const explorerApi = {
  session: () => call<SessionInfo>(""),
  model: (id: string) => call<ModelDetails>(`/models/${id}`),
  addZoo: (name: string) => call<ModelDetails>("/models/zoo", json("POST", { name })),
  uploadModel: (file: File) => call<ModelDetails>(`/models/upload?${q({ filename: file.name })}`, raw(file)),
  removeModel: (id: string) => call<void>(`/models/${id}`, { method: "DELETE" }),
  setFreeze: (id: string, freeze: Record<string, number[]>) => call<Record<string, number[]>>(`/models/${id}/freeze`, json("PUT", freeze)),
  uploadInput: (file: Blob, filename: string, kind = "upload") =>
    call<InputInfo>(`/inputs/upload?${q({ filename, kind })}`, raw(file)),
  addSample: (dataset: string, index: number) => call<InputInfo>("/inputs/sample", json("POST", { dataset, index })),
  removeInput: (id: string) => call<void>(`/inputs/${id}`, { method: "DELETE" }),
  imageUrl: (input: string, model?: string) => withToken(`${BASE}/inputs/${input}/image${model ? `?model=${model}` : ""}`),
  fit: (model: string, input: string) => call<{ steps: string[]; shape: number[] }>(`/models/${model}/inputs/${input}/fit`),
  outputs: (model: string, input: string, opts: { layer?: string[]; maxSize?: number; maxMaps?: number } = {}) =>
    call<Outputs>(`/models/${model}/inputs/${input}/outputs?${q({ layer: opts.layer, max_size: opts.maxSize, max_maps: opts.maxMaps })}`),
  compare: (model: string, a: string, b: string, layers: string[], maxSize = 64) =>
    call<Comparison>(`/models/${model}/compare?${q({ a, b, layer: layers, max_size: maxSize, max_maps: 32 })}`),
  saliency: (model: string, input: string, method: string) =>
    call<Saliency>(`/models/${model}/inputs/${input}/saliency?${q({ method })}`),
  adversarial: (model: string, input: string, attack: string, params: Record<string, number>, target: number | null) =>
    call<InputInfo>(`/models/${model}/adversarial`, json("POST", { input, attack, params, target })),
};
