/** The two-way engine on its own, over an in-memory link pair. */
import { describe, expect, jest, test } from "bun:test";
import { z } from "zod";
import { Peer } from "../src/engine/peer.ts";
import type { HandlerEntry } from "../src/engine/types.ts";
import { createProc } from "../src/index.ts";
import { decodeFrames, FrameType } from "../src/wire/frames.ts";
import { withFakeTimers } from "./helpers.ts";

const DOUBLE = createProc({ name: "double", takes: z.number(), returns: z.number() });
const WAIT = createProc({ name: "wait", takes: z.number(), timeout: 1000 });
const NOTE = createProc({ name: "note", takes: z.string() });

/**
 * Two peers wired to each other; frames are delivered on a microtask, like a
 * socket would, and logged. `cut()` loses every frame in flight, as a dropped
 * connection does; `resume()` attaches both again as a resumed session.
 */
function pair() {
  const handlers = { a: new Map<string, HandlerEntry>(), b: new Map<string, HandlerEntry>() };
  const sent: { from: string; type: number }[] = [];
  const a = new Peer({ handlers: handlers.a, side: "client", maxQueue: 2 }, "A");
  const b = new Peer({ handlers: handlers.b, side: "server" }, "B");
  let epoch = 0;
  const link = (from: string, to: Peer) => {
    const mine = epoch;
    return {
      send(bytes: Uint8Array) {
        for (const frame of decodeFrames(bytes)) {
          sent.push({ from, type: frame[0] });
          queueMicrotask(() => mine === epoch && to.receive(frame));
        }
      },
    };
  };
  const connect = (resumed = false) => {
    a.attach(link("a", b), resumed, b.settledBelow);
    b.attach(link("b", a), resumed, a.settledBelow);
  };
  const cut = () => {
    epoch++;
    a.detach();
    b.detach();
  };
  const on = (side: "a" | "b", proc: { name: string }, handler: HandlerEntry["handler"]) =>
    handlers[side].set(proc.name, { proc, handler } as HandlerEntry);
  /** Implements WAIT on b as a handler that never finishes; @returns the signal of the latest run */
  const hang = () => {
    let signal: AbortSignal | undefined;
    on("b", WAIT, ((_n: number, _o: unknown, ctx: { signal: AbortSignal }) => {
      signal = ctx.signal;
      return new Promise(() => {});
    }) as never);
    return () => signal;
  };
  /** Frames in flight from now on are lost, and neither end notices yet (a socket dying silently). */
  const lose = () => {
    epoch++;
  };
  return { a, b, sent, connect, cut, lose, resume: () => connect(true), on, hang };
}

const tick = () => new Promise((r) => setTimeout(r, 1));

/** Keeps the event loop busy for `ms`, as a slow handler or a long GC pause does. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe("engine", () => {
  test("calls go both ways and handlers get the owner", async () => {
    const { a, b, connect, on } = pair();
    connect();
    on("b", DOUBLE, ((n: number, owner: string) => (owner === "B" ? n * 2 : -1)) as never);
    on("a", DOUBLE, ((n: number) => n * 3) as never);
    expect(await a.call(DOUBLE, 21)).toBe(42);
    expect(await b.call(DOUBLE, 2)).toBe(6);
  });

  test("call ids are a counter, not random strings", async () => {
    const { a, connect, on } = pair();
    const ids: number[] = [];
    connect();
    on("b", DOUBLE, ((n: number) => n) as never);
    const orig = a.receive.bind(a);
    a.receive = (f) => {
      if (f[0] === FrameType.Result) ids.push(f[1]);
      orig(f);
    };
    await Promise.all([a.call(DOUBLE, 1), a.call(DOUBLE, 2), a.call(DOUBLE, 3)]);
    expect(ids).toEqual([1, 2, 3]);
  });

  test("calls made before attach are queued in order, and the queue is bounded", async () => {
    const { a, connect, on } = pair();
    on("b", DOUBLE, ((n: number) => n * 2) as never);
    const first = a.call(DOUBLE, 1);
    const second = a.call(DOUBLE, 2);
    await expect(a.call(DOUBLE, 3)).rejects.toMatchObject({ code: "LIMIT" });
    expect(a.pendingCount).toBe(2);
    connect();
    expect(await Promise.all([first, second])).toEqual([2, 4]);
  });

  test("a timeout rejects, sends CANCEL, and the handler's signal aborts", async () => {
    await withFakeTimers(async () => {
      const { a, sent, connect, hang } = pair();
      connect();
      const signalOf = hang();
      const p = a.call(WAIT, 1);
      await Promise.resolve();
      await Promise.resolve();
      expect(signalOf()?.aborted).toBe(false);
      jest.advanceTimersByTime(999);
      expect(a.pendingCount).toBe(1);
      jest.advanceTimersByTime(1);
      await expect(p).rejects.toMatchObject({ code: "TIMEOUT", message: 'call to "wait" timed out after 1000 ms' });
      await Promise.resolve();
      expect(sent.map((s) => s.type)).toEqual([FrameType.Call, FrameType.Cancel]);
      expect(signalOf()?.aborted).toBe(true);
      expect(signalOf()?.reason).toMatchObject({ code: "ABORTED" });
    });
  });

  test("a queued call that times out is removed and never sent", async () => {
    await withFakeTimers(async () => {
      const { a, sent, connect } = pair();
      const p = a.call(WAIT, 1, { timeout: 50 });
      jest.advanceTimersByTime(50);
      await expect(p).rejects.toMatchObject({ code: "TIMEOUT" });
      connect();
      expect(sent).toEqual([]);
    });
  });

  test("detach holds calls; reset fails the ones sent and keeps the queued; close fails everything", async () => {
    const { a, b, connect, cut, on } = pair();
    on("b", WAIT, (() => new Promise(() => {})) as never);
    connect();
    const sentCall = a.call(WAIT, 1);
    cut();
    const queued = a.call(WAIT, 2);
    await tick();
    expect(a.pendingCount).toBe(2);
    a.reset("new session");
    await expect(sentCall).rejects.toMatchObject({ code: "DISCONNECTED", message: expect.stringContaining("may or may not have run") });
    expect(a.pendingCount).toBe(1);
    a.close("shutting down");
    await expect(queued).rejects.toMatchObject({ code: "DISCONNECTED", message: expect.stringContaining("shutting down") });
    await expect(a.call(WAIT, 3)).rejects.toMatchObject({ code: "DISCONNECTED" });
    b.close("done");
  });

  test("after a resume, calls lost either way run once and answer once", async () => {
    const { a, connect, cut, resume, on } = pair();
    let runs = 0;
    on("b", DOUBLE, ((n: number) => {
      runs++;
      return n * 2;
    }) as never);
    connect();
    // Lost on the way there: the CALL never arrives.
    const lostCall = a.call(DOUBLE, 1);
    cut();
    await tick();
    expect(runs).toBe(0);
    resume();
    expect(await lostCall).toBe(2);
    expect(runs).toBe(1);
    // Lost on the way back: the handler ran, its RESULT is lost; the repeat is answered from the cache.
    const lostAnswer = a.call(DOUBLE, 5);
    await Promise.resolve(); // the CALL is delivered...
    cut(); // ...and the RESULT dies in flight
    await tick();
    expect(runs).toBe(2);
    resume();
    expect(await lostAnswer).toBe(10);
    expect(runs).toBe(2);
  });

  test("a repeat of a call still running waits for the one answer", async () => {
    const { a, connect, cut, resume, on } = pair();
    let runs = 0;
    let finish: (n: number) => void = () => {};
    on("b", DOUBLE, (() => {
      runs++;
      return new Promise<number>((r) => {
        finish = r;
      });
    }) as never);
    connect();
    const call = a.call(DOUBLE, 1);
    await tick();
    cut();
    resume();
    await tick();
    finish(7);
    expect(await call).toBe(7);
    expect(runs).toBe(1);
  });

  test("a CANCEL owed while disconnected goes out on resume", async () => {
    const { a, connect, cut, resume, hang } = pair();
    const signalOf = hang();
    connect();
    const ac = new AbortController();
    const call = a.call(WAIT, 1, { signal: ac.signal });
    await tick();
    cut();
    ac.abort();
    await expect(call).rejects.toMatchObject({ code: "ABORTED" });
    expect(signalOf()?.aborted).toBe(false);
    resume();
    await tick();
    expect(signalOf()?.aborted).toBe(true);
  });

  test("hold() keeps new calls back while answers still go out; release() sends them in order", async () => {
    const { a, b, sent, connect, on } = pair();
    on("b", DOUBLE, ((n: number) => n * 2) as never);
    on("a", DOUBLE, ((n: number) => n * 10) as never);
    connect();
    a.hold();
    const held = [a.call(DOUBLE, 1), a.call(DOUBLE, 2)];
    await tick();
    expect(sent).toEqual([]);
    // An incoming call is still answered while held.
    expect(await b.call(DOUBLE, 3)).toBe(30);
    sent.length = 0;
    a.release();
    expect(await Promise.all(held)).toEqual([2, 4]);
    expect(sent.filter((s) => s.from === "a").map((s) => s.type)).toEqual([FrameType.Call, FrameType.Call]);
  });

  test("a CANCEL sent into a socket that was already dead goes out again after the resume", async () => {
    const { a, b, connect, lose, resume, hang } = pair();
    const signalOf = hang();
    connect();
    const ac = new AbortController();
    const call = a.call(WAIT, 1, { signal: ac.signal });
    await tick();
    // The socket dies without either end noticing yet: the CANCEL sent now is lost.
    lose();
    ac.abort();
    await expect(call).rejects.toMatchObject({ code: "ABORTED" });
    await tick();
    expect(signalOf()?.aborted).toBe(false);
    a.detach();
    b.detach();
    resume();
    await tick();
    expect(signalOf()?.aborted).toBe(true);
  });

  test("a CANCEL lost twice, on the dead socket and on the next one that died at once, goes out again on a later resume", async () => {
    const { a, b, connect, lose, resume, hang } = pair();
    const signalOf = hang();
    connect();
    const ac = new AbortController();
    const call = a.call(WAIT, 1, { signal: ac.signal });
    await tick();
    lose();
    ac.abort();
    await expect(call).rejects.toMatchObject({ code: "ABORTED" });
    await tick();
    // The next socket dies too before anything it carried arrives.
    a.detach();
    b.detach();
    resume();
    lose();
    await tick();
    expect(signalOf()?.aborted).toBe(false);
    a.detach();
    b.detach();
    resume();
    await tick();
    expect(signalOf()?.aborted).toBe(true);
  });

  test("kept answers are dropped once the caller has them", async () => {
    const { a, b, connect, on } = pair();
    on("b", DOUBLE, ((n: number) => n) as never);
    connect();
    for (let i = 0; i < 50; i++) await a.call(DOUBLE, i);
    // Each CALL tells the lowest id still waiting, so only the last answer is kept.
    expect(b.keptAnswers).toBe(1);
  });

  test("broadcast events are delivered once: repeats by sequence number are dropped", async () => {
    const { a, on } = pair();
    const seen: unknown[] = [];
    on("a", NOTE, ((x: string) => void seen.push(x)) as never);
    for (const [seq, x] of [
      [1, "a"],
      [2, "b"],
      [2, "b"],
      [1, "a"],
      [5, "c"],
    ] as const)
      a.receive([FrameType.Event, seq, "note", x]);
    expect(seen).toEqual(["a", "b", "c"]);
  });

  test("late results for calls given up on are ignored", async () => {
    const { a, connect, on } = pair();
    connect();
    let finish: (v: number) => void = () => {};
    on(
      "b",
      DOUBLE,
      (() =>
        new Promise<number>((r) => {
          finish = r;
        })) as never,
    );
    const ac = new AbortController();
    const p = a.call(DOUBLE, 1, { signal: ac.signal });
    await Promise.resolve();
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: "ABORTED" });
    finish(2);
    await Promise.resolve();
    expect(a.pendingCount).toBe(0);
  });
});

describe("deadlines on a late event loop", () => {
  test("an overdue call times out first, even when a later call is made before its timer could fire", async () => {
    const { a, connect, hang } = pair();
    connect();
    hang();
    const first = a.call(WAIT, 1, { timeout: 20 });
    busy(60); // the first call's deadline passes while its timer cannot fire
    const second = a.call(WAIT, 2, { timeout: 2000 });
    second.catch(() => {});
    // Ordering, not duration: when the first rejects, the second must still be waiting.
    const seen = await first.then(
      () => ({ code: "OK", pending: a.pendingCount }),
      (err) => ({ code: err.code, pending: a.pendingCount }),
    );
    expect(seen).toEqual({ code: "TIMEOUT", pending: 1 });
    a.close("done");
  });

  test.each(["returns", "throws"])(
    "an answer that comes after the deadline, before the timer fired, is a TIMEOUT (handler %s)",
    async (how) => {
      const { a, connect, on } = pair();
      connect();
      on("b", DOUBLE, ((n: number) => {
        busy(60);
        if (how === "throws") throw new Error("too late anyway");
        return n * 2;
      }) as never);
      await expect(a.call(DOUBLE, 1, { timeout: 20 })).rejects.toMatchObject({
        code: "TIMEOUT",
        message: 'call to "double" timed out after 20 ms',
      });
    },
  );
});

describe("kept frames", () => {
  test("answers and logged broadcasts are kept as right-sized copies, not views pinning the encoder's 8 KB buffer", async () => {
    const { ReplyCache } = await import("../src/engine/replies.ts");
    const { BroadcastLog } = await import("../src/server/broadcast-log.ts");
    const { encodeFrame } = await import("../src/wire/frames.ts");
    const frame = encodeFrame([FrameType.Result, 1, "x"]);
    expect(frame.buffer.byteLength).toBeGreaterThan(frame.byteLength); // a view, as msgpackr returns it
    const cache = new ReplyCache({ maxEntries: 10, maxBytes: 1000 });
    cache.set(1, frame);
    expect(cache.get(1)?.buffer.byteLength).toBe(frame.byteLength);
    type Who = { sessionId: string; since: number; topics: null; isSubscribed(t: string): boolean; changes: null; changesFrom: number };
    const log = new BroadcastLog<Who>({ maxMessages: 10, maxBytes: 1000 });
    log.next();
    log.append(["t"], new Set(), frame);
    const who: Who = { sessionId: "s", since: 0, topics: null, isSubscribed: (t) => t === "t", changes: null, changesFrom: 0 };
    expect(log.missed(who, 0)[0]?.buffer.byteLength).toBe(frame.byteLength);
  });
});
