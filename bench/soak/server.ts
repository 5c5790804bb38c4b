/**
 * The soak run's server process: one Chatter server on Bun with a handler for
 * every kind of call, a broadcaster, calls to random clients, and its own heap
 * on request. Commands on stdin, one a line: `heap`, `quiet`, `stats`.
 * Usage: bun bench/soak/server.ts <resumeWindowMs> <replayMessages>
 */
import { heapStats } from "bun:jsc";
import { createInterface } from "node:readline";
import { ChatterError, createServer } from "../../src/index.ts";
import { BLOB, CALL_ME, CALL_TIMEOUT, DOUBLE, ECHO, FAIL, SHOUT, SLOW, STRICT, TICK, TOPIC, TOPICS } from "./procs.ts";

const EVERY_MS = 50;
const resumeWindow = Number(process.argv[2] ?? 2000);
const replayMessages = Number(process.argv[3] ?? 500);
const stats = {
  opened: 0,
  closed: 0,
  broadcasts: 0,
  errors: 0,
  /** Outcomes of the server's own calls to clients: ok, or the error code. */
  s2c: {} as Record<string, number>,
  s2cUnexpected: [] as string[],
};

/** Broadcasts carry one sequence for the whole server, so each client can check it only ever grows. */
let seq = 0;
const pad = "x".repeat(64);

const chatter = createServer({
  rateLimit: false,
  resumeWindow,
  replay: { maxMessages: replayMessages },
  onOpen: () => void stats.opened++,
  onClose: () => void stats.closed++,
  onError: (err) => {
    if (stats.errors++ < 5) console.error("[soak server]", err);
  },
});

/** Resolves after `ms`, or at once when `signal` aborts (the caller gave up). */
function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

chatter.on(ECHO, ({ n, text }) => ({ n: n + 1, text }));
chatter.on(BLOB, (blob) => blob);
chatter.on(STRICT, ({ n }) => n);
chatter.on(FAIL, (n) => {
  throw new Error(`soak failure ${n}`);
});
chatter.on(SLOW, async (ms, _conn, ctx) => {
  await sleepUnlessAborted(ms, ctx.signal);
  return ms;
});
chatter.on(CALL_ME, async (n, conn) => (await conn.call(DOUBLE, n)) + 1);
chatter.on(SHOUT, (topic, conn) => {
  conn.broadcast(topic, TICK, { seq: ++seq, pad });
  stats.broadcasts++;
  return seq;
});
chatter.on(TOPIC, ({ topic, on }, conn) => {
  if (on) conn.subscribe(topic);
  else conn.unsubscribe(topic);
  return conn.isSubscribed(topic);
});

const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch: (req, srv) => chatter.upgrade(req, srv),
  websocket: chatter.websocket,
});

/** Counts a server-to-client call's outcome; only ok or DISCONNECTED (the session ended) are expected. */
function tallyCall(n: number, call: Promise<number>): void {
  const count = (outcome: string, unexpected: boolean, detail = "") => {
    stats.s2c[outcome] = (stats.s2c[outcome] ?? 0) + 1;
    if (unexpected && stats.s2cUnexpected.push(`${outcome} ${detail}`) > 5) stats.s2cUnexpected.length = 5;
  };
  call.then(
    (result) => count(result === n * 2 ? "ok" : "wrong result", result !== n * 2, `${n} -> ${result}`),
    (err) => {
      const code = err instanceof ChatterError ? err.code : "not a ChatterError";
      count(code, code !== "DISCONNECTED", String(err));
    },
  );
}

/** Every EVERY_MS: a broadcast to one topic or two, and calls to two random connected clients. */
const busy = setInterval(() => {
  const live = [...chatter.connections].filter((c) => c.isConnected);
  const anyone = () => live[Math.floor(Math.random() * live.length)];
  const a = TOPICS[seq % TOPICS.length] as string;
  const b = TOPICS[(seq * 3 + 1) % TOPICS.length] as string;
  const topics = seq % 4 === 0 ? [a, b] : a;
  // Every other one from a connection, as a client's news is sent: that connection is left out.
  const from = seq % 2 ? anyone() : undefined;
  if (from) from.broadcast(topics, TICK, { seq: ++seq, pad });
  else chatter.broadcast(topics, TICK, { seq: ++seq, pad });
  stats.broadcasts++;
  for (let i = 0; i < 2; i++) {
    const conn = anyone();
    if (conn) tallyCall(seq, conn.call(DOUBLE, seq, { timeout: CALL_TIMEOUT }));
  }
}, EVERY_MS);

/** The median of three readings, each after a full collection; sizes in bytes. */
async function memory() {
  const readings: { heap: number; objects: number; types: Record<string, number> }[] = [];
  for (let i = 0; i < 3; i++) {
    Bun.gc(true);
    const h = heapStats();
    readings.push({ heap: h.heapSize, objects: h.objectCount, types: h.objectTypeCounts });
    await Bun.sleep(100);
  }
  const mid = readings.sort((x, y) => x.heap - y.heap)[1] as (typeof readings)[number];
  return { ...mid, rss: process.memoryUsage().rss, sessions: chatter.connections.size };
}

const commands: Record<string, () => Promise<string>> = {
  heap: async () => `HEAP ${JSON.stringify(await memory())}`,
  quiet: async () => {
    clearInterval(busy);
    return "QUIET";
  },
  stats: async () => `STATS ${JSON.stringify(stats)}`,
};
const input = createInterface({ input: process.stdin });
input.on("line", async (line) => {
  const run = commands[line.trim()];
  if (run) console.log(await run());
});
// The driver is gone (or done): never outlive it.
input.on("close", () => process.exit(0));
console.log(`READY ${server.port}`);
