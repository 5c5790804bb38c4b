/**
 * Fuzz: random and mutated frames against the server. It never crashes and
 * never leaks an unhandled rejection; a bad connection is closed with a
 * protocol close code; other connections keep working.
 */
import { afterAll, expect, test } from "bun:test";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { z } from "zod";
import { createProc } from "../src/index.ts";
import type { SocketDriver } from "../src/server/adapter.ts";
import { type ChatterServer, createServer } from "../src/server/index.ts";
import { hostFor } from "../src/server/registry.ts";
import { SocketState } from "../src/server/socket-state.ts";
import { encode } from "../src/wire/codec.ts";
import { encodeFrame, FrameType, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import { hold, nextTurn, rawSocket, startServer, waitFor } from "./helpers.ts";
import { ADD, ECHO, GREET, SLOW } from "./procs.ts";

const NUMBERS = createProc({ name: "numbers", takes: z.array(z.number()), returns: z.number() });
const THROWS = createProc({ name: "throws", takes: z.string() });
const OPTIONS = { rateLimit: false, maxMessageBytes: 4096, resumeWindow: 1000, onError: () => {} } as const;
const srv = startServer(OPTIONS);
/** The same server in-process, driven through the adapter contract with a recording driver. */
const inProcess = createServer(OPTIONS);

/** Async handlers still running; their answers and failures come after they finish. */
let running = 0;
/** SLOW handlers wait here until the test lets them go, so they are still running when CANCELs and closes come. */
let slowCalls = hold();

function implement(chatter: ChatterServer<unknown>): void {
  chatter.on(ADD, ({ a, b }) => a + b);
  chatter.on(ECHO, (x) => x);
  chatter.on(GREET, ({ name }) => `hi ${name}`);
  chatter.on(NUMBERS, (xs) => xs.length);
  chatter.on(THROWS, async (how) => {
    if (how === "sync") throw Object.create(null);
    running++;
    await nextTurn();
    running--;
    throw Object.create(null);
  });
  chatter.on(SLOW, async () => {
    running++;
    await slowCalls.wait();
    running--;
    return "slow";
  });
}

/** Lets the held SLOW handlers finish, waits for every async handler to settle, and holds new SLOW calls again. */
async function settleHandlers(): Promise<void> {
  slowCalls.release();
  slowCalls = hold();
  await waitFor(() => running === 0, 5000, "the async handlers to settle");
  // Their answers go out, and any rejection left unhandled is reported, by the end of the next turn.
  await nextTurn();
}
implement(srv.chatter);
implement(inProcess);
const unhandled: unknown[] = [];
const onUnhandled = (err: unknown) => void unhandled.push(err);
process.on("unhandledRejection", onUnhandled);
afterAll(() => {
  process.off("unhandledRejection", onUnhandled);
  srv.stop();
});

/** Close codes a bad frame may earn: protocol error, too big, wrong version. */
const PROTOCOL_CLOSES = [1002, 1009, 4000];

/** msgpackr's record definitions (extension 0x72): not part of the wire format, and a path into `new Function`. */
const withRecords = new Packr({ useRecords: true, structures: [] });
/** The shapes the attack run found: map frame types, records, huge issue counts, throws String() cannot convert. */
const attacks: Uint8Array[] = [
  encode([{ toString: 1 }, 1]),
  encode([{ valueOf: 1, toString: null }, "x"]),
  Uint8Array.from(withRecords.pack([FrameType.Call, 9, "echo", { a: 1, b: [{ c: 2 }] }, 0, 1])),
  Uint8Array.from(withRecords.pack([{ a: 1 }, { a: 2 }])),
  encodeFrame([FrameType.Call, 10, "numbers", new Array(3000).fill(null), 0, 1]),
  encodeFrame([FrameType.Call, 11, "throws", "sync", 0, 1]),
  encodeFrame([FrameType.Call, 12, "throws", "async", 0, 1]),
];

const hello = encodeFrame([FrameType.Hello, PROTOCOL_VERSION, "fuzz", "fuzz-session", null, 0, 1]);
const seeds: Uint8Array[] = [
  hello,
  encodeFrame([FrameType.Call, 1, "add", { a: 1, b: 2 }, 0, 1]),
  encodeFrame([FrameType.Call, 2, "greet", { name: "x" }, 1000, 1]),
  encodeFrame([FrameType.Call, 3, "echo", new Map([[1, new Set([2n])]]), 0, 1]),
  encodeFrame([FrameType.Call, 4, "slow", 3, 10, 1]),
  encodeFrame([FrameType.Result, 1, { deep: [1, 2, 3] }]),
  encodeFrame([FrameType.Error, 1, { code: "X", message: "m", issues: [{ message: "i", path: ["a", 0] }] }]),
  encodeFrame([FrameType.Cancel, 4]),
  encodeFrame([FrameType.Ping, 3]),
  encodeFrame([FrameType.Event, 1, "echo", 1]),
];

/** Random frames: raw bytes, mutated real frames, and well-formed arrays of random values. */
const frames = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.constantFrom(...attacks),
  fc
    .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat())
    .map(([seed, flips, cut]) => {
      // A real copy: the seeds are Buffers, whose slice() would be a view onto the encoder's memory.
      const copy = Uint8Array.from(seed.subarray(0, Math.max(1, seed.length - (cut % 4))));
      for (const [at, byte] of flips) copy[at % copy.length] = byte;
      return copy;
    }),
  fc.tuple(fc.integer({ min: 0, max: 12 }), fc.array(fc.anything(), { maxLength: 6 })).map(([t, rest]) => encode([t, ...rest])),
  // Well-formed calls with random ids, names and inputs: these must be answered, not closed.
  fc
    .tuple(fc.nat(), fc.constantFrom("add", "echo", "greet", "slow", "missing"), fc.anything(), fc.nat({ max: 50 }), fc.nat())
    .map(([id, name, input, timeout, below]) => encodeFrame([FrameType.Call, id, name, input, timeout, below])),
);

/** The largest message the server sent back in the in-process run: answers it builds itself stay small. */
let largestAnswer = 0;

/** A socket that records the close codes the server gives it. */
type RecordingSocket = { closes: number[] };

/** A driver that records what the server does to its sockets, for the in-process run. */
const recording: SocketDriver<RecordingSocket> = {
  send: (_socket, message) => {
    largestAnswer = Math.max(largestAnswer, message.byteLength);
    return "sent";
  },
  close: (socket, code) => void socket.closes.push(code),
  bufferedAmount: () => 0,
};

test("100,000 random and mutated frames through the server's message path", async () => {
  const core = hostFor(inProcess, recording);
  let closed = 0;
  let answered = 0;
  fc.assert(
    fc.property(fc.boolean(), frames, (greet, frame) => {
      const socket: RecordingSocket = { closes: [] };
      const closes = socket.closes;
      const link = new SocketState("fuzz", undefined);
      core.open(link, socket);
      if (greet) core.message(link, hello);
      core.message(link, frame);
      core.message(link, frame); // twice: repeats must be harmless too
      for (const code of closes) expect(PROTOCOL_CLOSES).toContain(code);
      if (closes.length) closed++;
      else answered++;
      core.closed(link, closes[0] ?? 1006, "fuzz");
    }),
    { numRuns: 100_000 },
  );
  await settleHandlers();
  expect(unhandled).toEqual([]);
  expect(largestAnswer).toBeLessThan(64 * 1024);
  expect(closed).toBeGreaterThan(10_000);
  expect(answered).toBeGreaterThan(5_000);
  console.log(`fuzz: 100000 frames in-process; ${closed} connections closed with a protocol code, ${answered} stayed open`);
}, 120_000);

test("1,000 random frames over real sockets; a healthy client keeps working throughout", async () => {
  const healthy = await srv.client();
  const samples = fc.sample(frames, { numRuns: 1000, seed: 42 });
  let closedWithProtocolCode = 0;
  let stillOpen = 0;
  for (let i = 0; i < samples.length; i += 50) {
    const batch = samples.slice(i, i + 50);
    const sockets = await Promise.all(batch.map(() => rawSocket(srv.url)));
    // Each frame is followed by a PING: a socket the frame did not close answers it with a PONG.
    for (const [j, frame] of batch.entries()) {
      sockets[j]?.send(frame);
      sockets[j]?.send([FrameType.Ping, 0]);
    }
    expect(await healthy.call(ADD, { a: i, b: 1 })).toBe(i + 1);
    await Promise.all(
      sockets.map(async (s) => {
        const done = await s.next(FrameType.Pong).then(
          () => null,
          () => s.closed,
        );
        if (done === null) {
          stillOpen++;
          s.ws.close();
        } else {
          expect(PROTOCOL_CLOSES).toContain(done.code);
          closedWithProtocolCode++;
        }
      }),
    );
    await settleHandlers();
  }
  await waitFor(() => [...srv.chatter.connections].filter((c) => c.isConnected).length === 1, 3000, "only the healthy client left");
  expect(await healthy.call(GREET, { name: "still here" })).toBe("hi still here");
  expect(closedWithProtocolCode).toBeGreaterThan(300);
  expect(unhandled).toEqual([]);
  console.log(
    `fuzz: 1000 frames over sockets, ${closedWithProtocolCode} closed with a protocol code, ${stillOpen} valid enough to stay open`,
  );
}, 60_000);
