// The page's hand-over from a run's history to its live stream: the cursor a frames read names,
// and the first message of each of the stream's connections.
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

// api.ts reads the page's address and session when loaded: a page's, without a token
vi.stubGlobal("location", { search: "", href: "http://localhost:8000/", protocol: "http:" });
vi.stubGlobal("sessionStorage", { getItem: () => null, setItem: () => {} });
const { CURSOR_HEADER, followMessage, followRun, parseCursor, readFrames, StreamCursor } = await import("../src/api");

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
  it("asks for cursors, and for the rows after the cursor where there is one, else the steps after the last one seen", () => {
    expect(followMessage({ kinds: ["scalar"], after: 7 }, -1, 7)).toEqual({ cursors: true, kinds: ["scalar"], after: 7 });
    expect(followMessage({ after: 0 }, -1, 0)).toEqual({ cursors: true, after: 0 }); // (an empty run read: row 0)
    expect(followMessage({ after: 7, since: 3 }, 3, 7)).toEqual({ cursors: true, after: 7 }); // (the exact one)
    expect(followMessage({ after: 7 }, 12, 31)).toEqual({ cursors: true, after: 31 }); // (the stream's latest cursor)
    expect(followMessage({ since: 3 }, 3, undefined)).toEqual({ cursors: true, since: 3 });
    expect(followMessage({}, -1, undefined)).toEqual({ cursors: true });
  });
});

describe("a stream's cursor", () => {
  const bytes = (...b: number[]) => new Uint8Array(b).buffer;

  it("knows the frames that came after it when a new connection sends them again, and only those", () => {
    const c = new StreamCursor(4);
    expect([c.cameBefore(bytes(1, 2)), c.cameBefore(bytes(1, 3)), c.cameBefore(bytes(7))]).toEqual([false, false, false]);
    c.reconnected(); // (going on from row 4: the three come again, with a new one among them)
    expect([bytes(1, 2), bytes(9, 9), bytes(1, 3), bytes(7), bytes(1, 2)].map((d) => c.cameBefore(d))).toEqual([true, false, true, true, false]);
    c.reconnected(); // (dropped again before a cursor came: every frame since row 4 may come again)
    expect([bytes(1, 2), bytes(9, 9), bytes(1, 3), bytes(7), bytes(1, 2)].map((d) => c.cameBefore(d))).toEqual([true, true, true, true, true]);
    c.moved(9); // (the server's cursor: all of them are before it)
    c.reconnected();
    expect(c.cameBefore(bytes(1, 2))).toBe(false);
    expect(c.row).toBe(9);
  });

  it("keeps nothing while it has no row (a stream followed from now, before its first cursor)", () => {
    const c = new StreamCursor();
    expect(c.cameBefore(bytes(1))).toBe(false);
    c.reconnected();
    expect(c.cameBefore(bytes(1))).toBe(false);
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

  it("goes on from the read's cursor, then from the stream's, each frame once", () => {
    const steps: number[] = [];
    const five = pythonFrame(5); // (the stored bytes: the server sends them alike each time)
    const stop = followRun("r", (f) => steps.push(f.step), () => {}, () => {}, { after: 9 });
    const [first] = FakeSocket.made;
    expect(first.url).toBe("ws://localhost:8000/api/runs/r/live");
    first.onopen!();
    first.close(); // (dropped before anything came: the cursor still says what is missing)
    vi.advanceTimersByTime(1000);
    const second = FakeSocket.made[1];
    second.onopen!();
    second.onmessage!({ data: five });
    second.close(); // (dropped before the server's cursor came: frame 5 will come again)
    vi.advanceTimersByTime(1000);
    const third = FakeSocket.made[2];
    third.onopen!();
    third.onmessage!({ data: five.slice(0) }); // (again: passed over)
    third.onmessage!({ data: pythonFrame(6) });
    third.onmessage!({ data: JSON.stringify({ type: "cursor", row: 14 }) });
    third.close();
    vi.advanceTimersByTime(1000);
    const fourth = FakeSocket.made[3];
    fourth.onopen!();
    fourth.onmessage!({ data: pythonFrame(7) });
    stop();
    expect([first, second, third, fourth].map((s) => s.sent.map((m) => JSON.parse(m)))).toEqual(
      [[{ cursors: true, after: 9 }], [{ cursors: true, after: 9 }], [{ cursors: true, after: 9 }], [{ cursors: true, after: 14 }]]);
    expect(steps).toEqual([5, 6, 7]);
  });
});
