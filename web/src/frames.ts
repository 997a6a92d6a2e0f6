// Decoder of convscope's binary frame encoding, version 1 (see convscope/frames/__init__.py):
// a 24-byte prefix (magic "CSFR", u16 version, u16 flags, u32 header length, u32 reserved,
// u64 blob length), a JSON header padded to 8 bytes, then the arrays' raw little-endian bytes
// at 8-byte aligned offsets. Arrays become typed-array views on the received buffer.

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Uint8Array
  | Uint16Array
  | Uint32Array;

export interface NDArray {
  dtype: string;
  shape: number[];
  data: TypedArray;
}

export interface Frame {
  run: string;
  step: number;
  wall_time: number;
  layer: string;
  kind: string;
  payload: Record<string, any>;
}

const MAGIC = 0x52465343; // "CSFR" read as little-endian u32
const PREFIX = 24;
const decoder = new TextDecoder();

export class FrameError extends Error {}

export function isArray(v: unknown): v is NDArray {
  return typeof v === "object" && v !== null && "data" in v && "shape" in v && "dtype" in v;
}

function makeArray(buf: ArrayBuffer, offset: number, dtype: string, shape: number[]): NDArray {
  const count = shape.reduce((a, b) => a * b, 1);
  let data: TypedArray;
  switch (dtype) {
    case "<f4": data = new Float32Array(buf, offset, count); break;
    case "<f8": data = new Float64Array(buf, offset, count); break;
    case "|i1": data = new Int8Array(buf, offset, count); break;
    case "<i2": data = new Int16Array(buf, offset, count); break;
    case "<i4": data = new Int32Array(buf, offset, count); break;
    case "|u1": case "|b1": data = new Uint8Array(buf, offset, count); break;
    case "<u2": data = new Uint16Array(buf, offset, count); break;
    case "<u4": data = new Uint32Array(buf, offset, count); break;
    case "<i8": {
      const big = new BigInt64Array(buf, offset, count);
      data = Float64Array.from(big, (x) => Number(x));
      break;
    }
    case "<u8": {
      const big = new BigUint64Array(buf, offset, count);
      data = Float64Array.from(big, (x) => Number(x));
      break;
    }
    case "<f2": {
      const half = new Uint16Array(buf, offset, count);
      data = Float32Array.from(half, halfToFloat);
      break;
    }
    default:
      throw new FrameError(`unsupported dtype ${dtype}`);
  }
  return { dtype, shape, data };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function restore(value: any, arrays: NDArray[]): any {
  if (Array.isArray(value)) return value.map((v) => restore(v, arrays));
  if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "__array__") return arrays[value.__array__];
    const out: Record<string, any> = {};
    for (const k of keys) out[k] = restore(value[k], arrays);
    return out;
  }
  return value;
}

// A string of JSON or a bare NaN, Infinity or -Infinity outside one
const NON_FINITE = /"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)/g;

/** A frame header: JSON as Python writes it, where a float that is not finite (a gradient norm
 * that overflowed, a share nothing measured) is a bare NaN, Infinity or -Infinity, which
 * JSON.parse refuses. Such a token becomes a marked string first, and that string the number. */
export function parseHeader(text: string): any {
  try {
    return JSON.parse(text);
  } catch (e) {
    if (!/NaN|Infinity/.test(text)) throw e;
    const marked = text.replace(NON_FINITE, (m, bare) => (bare ? `"\\u0000${bare}"` : m));
    return JSON.parse(marked, (_k, v) => (typeof v === "string" && v.charCodeAt(0) === 0 ? Number(v.slice(1)) : v));
  }
}

/** Decode the frame at `offset`; returns it and its size in bytes. */
export function decodeFrame(buf: ArrayBuffer, offset = 0): { frame: Frame; size: number } {
  if (buf.byteLength - offset < PREFIX) throw new FrameError("truncated frame");
  const view = new DataView(buf, offset);
  if (view.getUint32(0, true) !== MAGIC) throw new FrameError("not a convscope frame");
  const version = view.getUint16(4, true);
  if (version !== 1) throw new FrameError(`unsupported frame version ${version}`);
  const hlen = view.getUint32(8, true);
  const blen = Number(view.getBigUint64(16, true));
  const size = PREFIX + hlen + blen;
  if (offset + size > buf.byteLength) throw new FrameError("truncated frame");
  const header = parseHeader(decoder.decode(new Uint8Array(buf, offset + PREFIX, hlen)));
  const blob = offset + PREFIX + hlen;
  const arrays: NDArray[] = (header.arrays ?? []).map((a: any) => makeArray(buf, blob + a.offset, a.dtype, a.shape));
  const frame: Frame = {
    run: header.run,
    step: header.step,
    wall_time: header.wall_time,
    layer: header.layer ?? "",
    kind: header.kind,
    payload: restore(header.payload ?? {}, arrays),
  };
  return { frame, size };
}

/** Decode frames concatenated in one buffer (an HTTP body of the frames endpoint). */
export function decodeStream(buf: ArrayBuffer): Frame[] {
  const out: Frame[] = [];
  let pos = 0;
  while (pos < buf.byteLength) {
    const { frame, size } = decodeFrame(buf, pos);
    out.push(frame);
    pos += size;
  }
  return out;
}
