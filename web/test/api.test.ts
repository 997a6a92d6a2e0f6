// The page's hand-over from a run's history to its live stream: the cursor a frames read names,
// and the first message of each of the stream's connections.
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

// api.ts reads the page's address and session when loaded: a page's, without a token
vi.stubGlobal("location", { search: "", href: "http://localhost:8000/", protocol: "http:" });
vi.stubGlobal("sessionStorage", { getItem: () => null, setItem: () => {} });
const { CURSOR_HEADER, followMessage, followRun, parseCursor, readFrames } = await import("../src/api");

const PYTHON = process.env.PYTHON ?? "python3";

/** One encoded scalar frame of ``step``, as Python's convscope.frames writes it. */
function pythonFrame(step: number): ArrayBuffer {
  const script = `
import sys
from convscope.frames import Frame, encode
sys.stdout.buffer.write(encode(Frame(run="r", step=${step}, kind="scalar", payload={"name": "loss", "value": 0.5})))
`;
  const out = execFileSync(PYTHON, ["-c", script]);
  return out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength) as ArrayBuffer;
}

describe("the cursor of a frames read", () => {
  it("is the row id the header names, and null where it names none this page can hold exactly", () => {
    expect(parseCursor("0")).toBe(0);
    expect(parseCursor(" 1234 ")).toBe(1234);
    for (const bad of [null, "", "-1", "1.5", "1e3", "abc", "12abc", "9007199254740993"]) expect(parseCursor(bad)).toBeNull();
  });

  it("comes with the frames read", async () => {
    const fetch = vi.fn(async () => new Response(new ArrayBuffer(0), { headers: { [CURSOR_HEADER]: "42" } }));
    vi.stubGlobal("fetch", fetch);
    expect(await readFrames("r", { kind: ["scalar", "pruning"], maxPoints: 3000 })).toEqual({ frames: [], cursor: 42 });
    expect(fetch).toHaveBeenCalledWith("api/runs/r/frames?kind=scalar&kind=pruning&max_points=3000");
    fetch.mockImplementation(async () => new Response(new ArrayBuffer(0)));
    expect((await readFrames("r", {})).cursor).toBeNull(); // (a server that names none)
  });
});

describe("the first message of a followed run's stream", () => {
  it("asks for the rows after the read's cursor until a frame has come, then for the steps after the last one seen", () => {
    expect(followMessage({ kinds: ["scalar"], after: 7 }, -1, false)).toEqual({ kinds: ["scalar"], after: 7 });
    expect(followMessage({ after: 0 }, -1, false)).toEqual({ after: 0 }); // (an empty run read: row 0)
    expect(followMessage({ after: 7, since: 3 }, 3, false)).toEqual({ after: 7 }); // (the exact one)
    expect(followMessage({ after: 7 }, 12, true)).toEqual({ since: 12 });
    expect(followMessage({ since: 3 }, 3, false)).toEqual({ since: 3 });
    expect(followMessage({}, -1, false)).toEqual({});
  });
});

/** A WebSocket that records what the page sends, opened and closed by the test. */
class FakeSocket {
  static made: FakeSocket[] = [];
  sent: string[] = [];
  binaryType = "";
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }
  send(text: string): void {
    this.sent.push(text);
  }
  close(): void {
    this.onclose?.();
  }
}

describe("followRun", () => {
  beforeAll(() => {
    vi.useFakeTimers();
    vi.stubGlobal("WebSocket", FakeSocket);
  });
  afterAll(() => vi.useRealTimers());

  it("sends the cursor on each connection until a frame came, then the last step", () => {
    const steps: number[] = [];
    const stop = followRun("r", (f) => steps.push(f.step), () => {}, () => {}, { after: 9 });
    const [first] = FakeSocket.made;
    expect(first.url).toBe("ws://localhost:8000/api/runs/r/live");
    first.onopen!();
    first.close(); // (dropped before anything came: the cursor still says what is missing)
    vi.advanceTimersByTime(1000);
    const second = FakeSocket.made[1];
    second.onopen!();
    second.onmessage!({ data: pythonFrame(5) });
    second.close();
    vi.advanceTimersByTime(1000);
    const third = FakeSocket.made[2];
    third.onopen!();
    stop();
    expect([first, second, third].map((s) => s.sent.map((m) => JSON.parse(m)))).toEqual([[{ after: 9 }], [{ after: 9 }], [{ since: 5 }]]);
    expect(steps).toEqual([5]);
  });
});
