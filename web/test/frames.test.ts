// The TypeScript decoder reads frames exactly as Python's convscope.frames encodes them:
// the bytes are produced by Python at test time.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { decodeFrame, decodeStream, FrameError, parseHeader } from "../src/frames";

const PYTHON = process.env.PYTHON ?? "python3";

function pythonFrames(): ArrayBuffer {
  const script = `
import sys, numpy as np
from convscope.frames import Frame, encode
frames = [
    Frame(run="r1", step=7, kind="correlation", layer="conv1", wall_time=12.5,
          payload={"matrix": np.array([[1, -0.5], [-0.5, 1]], np.float32), "dead": np.array([False, True])}),
    Frame(run="r1", step=8, kind="groups", layer="conv1",
          payload={"labels": np.array([0, -1, 0], np.int32), "threshold": 0.9, "method": "union",
                   "events": [{"type": "appear", "ids": [0], "from": []}]}),
    Frame(run="r1", step=9, kind="trajectory", layer="conv2",
          payload={"dims": np.array([0.1, 0.2, 0.3], np.float32), "dim_index": np.array([5, 6, 2**40], np.int64),
                   "pca": np.array([1, 2, 3], np.float32), "explained_variance": np.array([0.5, 0.3, 0.1], np.float32),
                   "half": np.array([1.5, -2.0], np.float16), "img": np.arange(6, dtype=np.uint8).reshape(2, 3)}),
]
sys.stdout.buffer.write(b"".join(encode(f) for f in frames))
`;
  const out = execFileSync(PYTHON, ["-c", script]);
  return out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength) as ArrayBuffer;
}

describe("frame decoder", () => {
  const buf = pythonFrames();

  it("reads every frame of a stream with its header fields", () => {
    const frames = decodeStream(buf);
    expect(frames.map((f) => [f.kind, f.step, f.layer])).toEqual([
      ["correlation", 7, "conv1"],
      ["groups", 8, "conv1"],
      ["trajectory", 9, "conv2"],
    ]);
    expect(frames[0].wall_time).toBe(12.5);
  });

  it("restores arrays with dtype, shape and exact values", () => {
    const [corr, groups, traj] = decodeStream(buf);
    expect(corr.payload.matrix.shape).toEqual([2, 2]);
    expect(Array.from(corr.payload.matrix.data)).toEqual([1, -0.5, -0.5, 1]);
    expect(Array.from(corr.payload.dead.data)).toEqual([0, 1]);
    expect(Array.from(groups.payload.labels.data)).toEqual([0, -1, 0]);
    expect(groups.payload.events[0]).toEqual({ type: "appear", ids: [0], from: [] });
    expect(Array.from(traj.payload.dim_index.data)).toEqual([5, 6, 2 ** 40]);
    expect(Array.from(traj.payload.half.data)).toEqual([1.5, -2]);
    expect(traj.payload.img.shape).toEqual([2, 3]);
    expect(Array.from(traj.payload.img.data)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("reads the NaN and infinities Python writes in a header, leaving strings as they are", () => {
    const script = `
import sys, math
from convscope.frames import Frame, encode
payload = {"status": "exploding", "grad_norm": math.inf, "update_ratio": -math.inf, "dead_fraction": math.nan,
           "zero_fraction": 0.5, "nonfinite": 0, "reasons": ["gradient norm inf > 100", 'a "NaN" and Infinity, quoted']}
sys.stdout.buffer.write(encode(Frame(run="r", step=3, kind="gradient_health", layer="conv1", payload=payload)))
`;
    const out = execFileSync(PYTHON, ["-c", script]);
    const { frame } = decodeFrame(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength) as ArrayBuffer);
    expect(frame.payload.grad_norm).toBe(Infinity);
    expect(frame.payload.update_ratio).toBe(-Infinity);
    expect(Number.isNaN(frame.payload.dead_fraction)).toBe(true);
    expect(frame.payload.zero_fraction).toBe(0.5);
    expect(frame.payload.reasons).toEqual(["gradient norm inf > 100", 'a "NaN" and Infinity, quoted']);
    expect(() => parseHeader('{"a": NaNa}')).toThrow(SyntaxError); // (what is not JSON still is not)
  });

  it("refuses truncated and foreign bytes", () => {
    expect(() => decodeFrame(buf.slice(0, 30))).toThrow(FrameError);
    expect(() => decodeFrame(new Uint8Array(64).buffer)).toThrow(FrameError);
  });
});
