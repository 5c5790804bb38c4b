/**
 * The load generator, a process of its own. Modes:
 *   echo <system> <port> <n> <window>   n echo calls, `window` in flight, after a warm-up (see ready());
 *                                       prints {"rate","clientCpu","p50","p99"}, the last two round trips in µs
 *   s2c <port> <n> <window>             Chatter server-to-client calls, after a warm-up; prints {"rate"}
 *   fanout <system> <port> <conns> <k> <size> <runs> [spread]  k broadcasts to conns sockets (all in one tick, or
 *                                       with "spread" one a tick), `runs` measured times; prints {"rate","serverRate"} in
 *                                       deliveries/s, end to end and by the server's own clock
 *   idle <system> <port> <conns> [batch] opens conns idle connections (ids unique per batch), prints OPEN, exits on stdin "close"
 *   stream <system> <port> <n>         one stream of n items from server to client, after a warm-up stream;
 *                                       prints {"rate"} in items/s (bench/systems/<system>/stream.ts)
 * Every loop is bounded by its count.
 */
import { createInterface } from "node:readline";
import { encodeFrame, FrameType, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import { countValues } from "../src/wire/guard.ts";
import { PAYLOAD } from "./procs.ts";
import { connect as connectChatter } from "./systems/chatter/client.ts";

interface Conn {
  call(payload: typeof PAYLOAD): Promise<unknown>;
  close(): unknown;
}

/**
 * Runs n calls with `window` in flight, timing each on this process's clock from just before it is made to its
 * answer. Warm-ups record too, so the measured run executes the same hot code.
 * @param latencies preallocated, at least n long; gets each call's round trip in ms, in the order calls start
 * @returns calls per second
 */
async function drive(call: () => Promise<unknown>, n: number, window: number, latencies: Float64Array): Promise<number> {
  let started = 0;
  const worker = async () => {
    while (started < n) {
      const i = started++;
      const sent = performance.now();
      await call();
      latencies[i] = performance.now() - sent;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(window, n) }, worker));
  return (n / (performance.now() - t0)) * 1000;
}

async function echo(system: string, port: number, n: number, window: number) {
  const { connect } = (await import(`./systems/${system}/client.ts`)) as { connect(port: number): Promise<Conn> };
  const conn = await connect(port);
  // Warm-up, long enough for the JIT to finish with the hot path: on a fresh server, compiler threads were
  // still busy during a short measured run. Then more at the measured window: with many calls in flight,
  // frames travel in batches, and the per-message code gets hot only when messages are many.
  const latencies = new Float64Array(Math.max(n, WARM_UP));
  await drive(() => conn.call(PAYLOAD), WARM_UP, 100, latencies);
  await drive(() => conn.call(PAYLOAD), WARM_UP / 2, window, latencies);
  await ready();
  const before = process.cpuUsage();
  const rate = await drive(() => conn.call(PAYLOAD), n, window, latencies);
  const used = process.cpuUsage(before);
  clientCpu = (used.user + used.system) / n;
  await conn.close();
  // Sorted once, after the clock has stopped; nearest rank.
  const sorted = latencies.subarray(0, n).sort();
  const at = (q: number) => (sorted[Math.ceil(q * n) - 1] as number) * 1000;
  latency = { p50: at(0.5), p99: at(0.99) };
  return rate;
}

async function serverToClient(port: number, n: number, window: number) {
  const { client } = await connectChatter(port);
  const { CALL_ME_BACK, ECHO } = await import("./procs.ts");
  client.on(ECHO, (p) => p);
  await client.call(CALL_ME_BACK, { n: WARM_UP, window: 100 });
  await ready();
  const t0 = performance.now();
  await client.call(CALL_ME_BACK, { n, window });
  const rate = (n / (performance.now() - t0)) * 1000;
  client.close();
  return rate;
}

/** Bare sockets; for Chatter each completes the handshake, so the server holds a real session. Raw sockets echo once. */
async function openSockets(system: string, port: number, count: number, batch = 0): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i += 100) {
    const group = Array.from({ length: Math.min(100, count - i) }, async (_, j) => {
      const n = batch * count + i + j;
      const ws = new WebSocket(`ws://127.0.0.1:${port}/?cid=load-${n}`);
      ws.binaryType = "arraybuffer";
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = reject;
      });
      // One exchange each, so both servers have handled a message on every socket: HELLO and WELCOME for
      // Chatter, a HELLO-sized echo for raw.
      const hello = encodeFrame([FrameType.Hello, PROTOCOL_VERSION, `load-${n}`, `s-${n}`, null, 0, 1]);
      ws.send(system === "chatter" ? hello : new Uint8Array(hello.byteLength));
      await new Promise((resolve) => {
        ws.onmessage = resolve;
      });
      return ws;
    });
    sockets.push(...(await Promise.all(group)));
  }
  return sockets;
}

/** A warm-up stream, then one measured stream of n items on the same connection; @returns items per second */
async function stream(system: string, port: number, n: number) {
  const { connect } = (await import(`./systems/${system}/stream.ts`)) as {
    connect(port: number): Promise<{ stream(n: number): Promise<number>; close(): unknown }>;
  };
  const conn = await connect(port);
  await conn.stream(WARM_UP);
  const t0 = performance.now();
  const got = await conn.stream(n);
  const rate = (n / (performance.now() - t0)) * 1000;
  if (got !== n) throw new Error(`${system} stream: ${got} items of ${n}`);
  await conn.close();
  return rate;
}

let callId = 0;
/** Calls made before every measured echo run (100 in flight). */
const WARM_UP = 20_000;

/** Lines from stdin not yet taken by `line()`, and who waits for the next one. */
const stdinLines: string[] = [];
let onStdinLine: (() => void) | null = null;
createInterface({ input: process.stdin }).on("line", (l) => {
  stdinLines.push(l.trim());
  onStdinLine?.();
});
/** @returns once stdin has said `word` (a line of its own) */
async function line(word: string): Promise<void> {
  for (;;) {
    while (stdinLines.length) if (stdinLines.shift() === word) return;
    await new Promise<void>((resolve) => (onStdinLine = resolve));
  }
}

/**
 * After the warm-up (or, as RAN, after the measured part): prints `mark`, then waits for "go" on stdin, so the
 * caller can read the server's CPU clock.
 */
async function ready(mark = "WARM"): Promise<void> {
  console.log(mark);
  await line("go");
}
/** The load client's own CPU µs per call (echo runs) or per delivery (fan-out runs). */
let clientCpu: number | undefined;
/** Fan-out runs: deliveries/s by the server's own clock (its publish loop), as `serverRate`. */
let fanoutServer: number | undefined;
/** Round-trip µs of the measured echo calls, median and 99th percentile. */
let latency: { p50: number; p99: number } | undefined;

/** The blob size that makes a Chatter EVENT frame `frameSize` bytes, so both systems send the same bytes. */
function blobFor(frameSize: number): number {
  const overhead = encodeFrame([FrameType.Event, 1_000_000, "note", new Uint8Array(frameSize)]).byteLength - frameSize;
  return frameSize - overhead;
}

/**
 * @returns the broadcasts one message brings: raw sends one message per publish, Chatter may send a burst of
 *   broadcasts to a topic as one message (PROTOCOL.md, "Framing"). Its frames are counted with the guard's pass,
 *   which builds nothing: the receivers decode neither system's payload, as before batching. A Chatter caller's
 *   small RESULT comes alone (its own message, under `size - 8` bytes) and is not counted.
 */
function deliveries(system: string, data: ArrayBuffer, size: number): number {
  if (data.byteLength < size - 8) return 0;
  return system === "chatter" ? countValues(new Uint8Array(data), Number.POSITIVE_INFINITY) : 1;
}

/** Fan-out runs before the measured ones: a Chatter server's JIT and heap settle over the first few. */
const FANOUT_WARM_RUNS = 3;

/**
 * k broadcasts to `conns` sockets, FANOUT_WARM_RUNS warm-up runs, then `runs` measured ones. Between them it
 * prints WARM and RAN and waits for "go" on stdin each time, so the caller can read the server's CPU clock around
 * the measured runs: the server's own cost of the fan-out, apart from the receivers' (this process's CPU is
 * reported too). A single warm-up left a Chatter server's CPU per delivery swinging by a third from one round to
 * the next (JIT tiers and collections landing in the three measured runs or not); three warm-ups and twelve
 * measured runs average those phases in, as a long-running server pays them.
 * @returns the median of the measured runs, deliveries/s as the receivers count them
 */
async function fanout(system: string, port: number, conns: number, k: number, size: number, runs: number, spread: boolean) {
  const sockets = await openSockets(system, port, conns);
  const run = async () => {
    let received = 0;
    const expected = conns * k;
    const done = new Promise<void>((resolve) => {
      for (const ws of sockets) {
        ws.onmessage = (ev) => {
          received += deliveries(system, ev.data as ArrayBuffer, size);
          if (received === expected) resolve();
        };
      }
    });
    const t0 = performance.now();
    const go = sockets[0] as WebSocket;
    if (system === "chatter") go.send(encodeFrame([FrameType.Call, ++callId, "fanout", { k, size: blobFor(size), spread }, 0, callId]));
    else go.send(JSON.stringify({ fanout: k, size, spread }));
    await done;
    return (expected / (performance.now() - t0)) * 1000;
  };
  for (let i = 0; i < FANOUT_WARM_RUNS; i++) await run();
  await ready();
  const before = process.cpuUsage();
  // The median rate: one run of 1,000 receivers is noisy on 2 cores.
  const rates: number[] = [];
  for (let i = 0; i < runs; i++) rates.push(await run());
  rates.sort((x, y) => x - y);
  const used = process.cpuUsage(before);
  clientCpu = (used.user + used.system) / (runs * conns * k);
  await ready("RAN");
  for (const ws of sockets) ws.close();
  return rates[runs >> 1] as number;
}

async function idle(system: string, port: number, conns: number, batch: number) {
  const sockets = await openSockets(system, port, conns, batch);
  console.log("OPEN");
  await line("close");
  for (const ws of sockets) ws.close();
}

const [mode, ...args] = process.argv.slice(2);
const num = (i: number) => Number(args[i]);
let rate = 0;
if (mode === "echo") rate = await echo(args[0] as string, num(1), num(2), num(3));
else if (mode === "s2c") rate = await serverToClient(num(0), num(1), num(2));
else if (mode === "fanout") rate = await fanout(args[0] as string, num(1), num(2), num(3), num(4), num(5), args[6] === "spread");
else if (mode === "stream") rate = await stream(args[0] as string, num(1), num(2));
else if (mode === "idle") await idle(args[0] as string, num(1), num(2), Number(args[3] ?? 0));
else throw new Error(`unknown mode ${mode}`);
if (mode !== "idle") console.log(JSON.stringify({ rate, clientCpu, serverRate: fanoutServer, ...latency }));
process.exit(0);
