/**
 * `npm run bench`: Chatter side by side with raw Bun WebSockets (the limit),
 * Socket.IO 4, birpc and capnweb; and a stream row beside raw Bun, tRPC 11
 * and capnweb. Each server and each load generator is its
 * own process on 127.0.0.1; systems alternate within every round so the
 * machine's drift falls on all of them; each figure is the median of the
 * rounds. Prints a table, then the figures as one JSON object on the last line.
 * `--quick` runs fewer, shorter rounds (under a minute). A full run also
 * writes bench/results.svg. `--stream-only` runs the stream row alone (the
 * other figures print as NaN), for work on streams.
 */
import { writeFileSync } from "node:fs";
import { build } from "esbuild";
import { measureClientBundle, measurePeerBundles } from "./client-bundle.ts";

const quick = process.argv.includes("--quick");
const streamOnly = process.argv.includes("--stream-only");
/**
 * The 1-in-flight runs put the server on core 0 and the load client on core 1.
 * A ping-pong pair is idle most of the time, and left to the scheduler it
 * sometimes shares a core (cheap wake-ups) and sometimes not: on this VM that
 * alone moved one system's rate between 10k and 27k calls/s from one run to
 * the next. Busy runs (1,000 in flight, fan-out) are left to the OS, which
 * spreads them anyway; pinning those would only crowd each runtime's GC and
 * JIT threads onto its one core. `--no-pin` leaves every run to the OS.
 */
const PIN = !process.argv.includes("--no-pin") && navigator.hardwareConcurrency >= 2 && Bun.which("taskset") !== null;
const onCore = (core: number | undefined) => (PIN && core !== undefined ? ["taskset", "-c", String(core)] : []);
const ROUNDS = quick ? 3 : 7;
const SEQ_CALLS = quick ? 2_000 : 8_000;
const PIPE_CALLS = quick ? 20_000 : 80_000;
const WINDOW = 1000;
const FANOUT_CONNS = 1000;
const FANOUT_K = quick ? 100 : 200;
const FANOUT_FRAME = 64;
/** Measured fan-out runs per load process, after its warm-up (bench/load.ts, fanout()). */
const FANOUT_RUNS = quick ? 4 : 12;
/**
 * The fan-out again with one broadcast a tick, so that nothing can be gathered into one message: each broadcast is
 * one send per subscriber for both systems. Fewer broadcasts and runs, as each costs a send per subscriber.
 */
const SPREAD_K = 50;
const SPREAD_RUNS = quick ? 2 : 4;
const IDLE_CONNS = quick ? 500 : 1000;
const IDLE_ROUNDS = quick ? 3 : 5;
/** Items in the measured stream, server to client, each `{ i, text: "token" }` like an LLM's tokens. */
const STREAM_ITEMS = 100_000;
const ROOT = `${import.meta.dir}/..`;
const BUN = process.execPath;

interface System {
  name: string;
  label: string;
  runtime: "bun" | "node";
}
const SYSTEMS: System[] = [
  { name: "raw", label: "raw Bun echo (one message per call)", runtime: "bun" },
  { name: "chatter", label: "Chatter on Bun", runtime: "bun" },
  { name: "socketio", label: "Socket.IO 4, Node server", runtime: "node" },
  { name: "birpc", label: "birpc over Bun WebSocket", runtime: "bun" },
  { name: "capnweb", label: "capnweb on Bun", runtime: "bun" },
];

/** The stream row: each server's stream procedure, read by bench/systems/<name>/stream.ts. */
const STREAMERS: System[] = [
  { name: "raw", label: "raw Bun, ws.send per item (msgpackr), no flow control", runtime: "bun" },
  { name: "chatter", label: "Chatter client.stream, default credit (zod-checked items)", runtime: "bun" },
  // On Bun, tRPC's `ws` server runs on Bun's own sockets: 300k items/s here against 40k on Node.
  { name: "trpc", label: "tRPC 11 subscription (async generator), ws adapter on Bun, JSON", runtime: "bun" },
  { name: "capnweb", label: "capnweb ReadableStream on Bun", runtime: "bun" },
];

/** A server process speaking the bench contract (bench/commands.ts), pinned to `core` if given. */
async function startServer(system: System, core?: number) {
  let cmd = [BUN, `${ROOT}/bench/systems/${system.name}/server.ts`];
  if (system.runtime === "node") {
    const outfile = `${ROOT}/test-artifacts/bench/${system.name}-server.mjs`;
    await build({
      entryPoints: [cmd[1] as string],
      bundle: true,
      platform: "node",
      format: "esm",
      packages: "external",
      outfile,
      logLevel: "silent",
    });
    cmd = ["node", "--expose-gc", outfile];
  }
  const proc = Bun.spawn([...onCore(core), ...cmd], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const lines = lineReader(proc.stdout as ReadableStream<Uint8Array>);
  const port = Number((await lines.next("READY ")).slice(6));
  const ask = async (command: string, prefix: string) => {
    proc.stdin.write(`${command}\n`);
    proc.stdin.flush();
    // The first number after the prefix ("MEM <rss> HEAP <heap used>" carries two).
    return Number.parseFloat((await lines.next(prefix)).slice(prefix.length));
  };
  return {
    port,
    cpu: () => ask("cpu", "CPU "),
    mem: () => ask("mem", "MEM "),
    async stop() {
      proc.kill();
      await proc.exited;
    },
  };
}

/** Reads a process's stdout line by line; `next(prefix)` waits for the next line that starts with it. */
function lineReader(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    async next(prefix: string): Promise<string> {
      for (;;) {
        const lines = buffer.split("\n");
        for (let i = 0; i < lines.length - 1; i++) {
          if ((lines[i] as string).startsWith(prefix)) {
            buffer = lines.slice(i + 1).join("\n");
            return lines[i] as string;
          }
        }
        const { value, done } = await reader.read();
        if (done) throw new Error(`process ended before printing "${prefix}"`);
        buffer += decoder.decode(value);
      }
    },
  };
}

interface LoadRun {
  /** Pin the load client to this core (see PIN). */
  core?: number;
  /** Runs between the warm-up and the measured part (echo, s2c and fan-out), e.g. to read the server's CPU clock. */
  onWarm?: () => Promise<unknown>;
  /** Runs right after the measured part of a fan-out, before its sockets close. */
  onDone?: () => Promise<unknown>;
}

/** Runs bench/load.ts in its own process; @returns its rate and, for echo runs, its own CPU µs per call and round-trip µs */
async function load(run: LoadRun, ...args: (string | number)[]): Promise<{ rate: number; clientCpu?: number; p50?: number; p99?: number }> {
  const proc = Bun.spawn([...onCore(run.core), BUN, `${ROOT}/bench/load.ts`, ...args.map(String)], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = lineReader(proc.stdout as ReadableStream<Uint8Array>);
  const go = () => {
    proc.stdin.write("go\n");
    proc.stdin.flush();
  };
  if (args[0] === "echo" || args[0] === "s2c" || args[0] === "fanout") {
    await lines.next("WARM");
    await run.onWarm?.();
    go();
  }
  if (args[0] === "fanout") {
    await lines.next("RAN");
    await run.onDone?.();
    go();
  }
  const out = await lines.next("{");
  if ((await proc.exited) !== 0) throw new Error(`load ${args.join(" ")} failed`);
  return JSON.parse(out);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

type Samples = Record<string, number[]>;
const push = (into: Samples, key: string, value: number) => {
  into[key] ??= [];
  into[key].push(value);
};

const results: Samples = {};
const t0 = performance.now();
for (let round = 0; round < ROUNDS; round++) {
  // Rotate the starting system each round, so none always runs first.
  const order = streamOnly ? [] : SYSTEMS.map((_, i) => SYSTEMS[(i + round) % SYSTEMS.length] as System);
  for (const system of order) {
    const pinned = await startServer(system, 0);
    try {
      const seq = await load({ core: 1 }, "echo", system.name, pinned.port, SEQ_CALLS, 1);
      push(results, `${system.name}.seq`, seq.rate);
      push(results, `${system.name}.seqP50`, seq.p50 as number);
      push(results, `${system.name}.seqP99`, seq.p99 as number);
    } finally {
      await pinned.stop();
    }
    const server = await startServer(system);
    try {
      let before = 0;
      const pipe = await load({ onWarm: async () => (before = await server.cpu()) }, "echo", system.name, server.port, PIPE_CALLS, WINDOW);
      push(results, `${system.name}.pipe`, pipe.rate);
      push(results, `${system.name}.pipeP50`, pipe.p50 as number);
      push(results, `${system.name}.pipeP99`, pipe.p99 as number);
      push(results, `${system.name}.clientCpu`, pipe.clientCpu as number);
      push(results, `${system.name}.cpu`, ((await server.cpu()) - before) / PIPE_CALLS);
      if (system.name === "chatter") push(results, "chatter.s2c", (await load({}, "s2c", server.port, PIPE_CALLS, WINDOW)).rate);
    } finally {
      await server.stop();
    }
  }
  // Fan-out and idle memory: raw and Chatter only, alternating.
  for (const name of streamOnly ? [] : round % 2 ? ["chatter", "raw"] : ["raw", "chatter"]) {
    const system = SYSTEMS.find((s) => s.name === name) as System;
    const server = await startServer(system);
    try {
      // The server's CPU clock around the measured runs: its own cost of the fan-out, apart from the receivers'.
      let before = 0;
      let after = 0;
      const clock = { onWarm: async () => (before = await server.cpu()), onDone: async () => (after = await server.cpu()) };
      const fan = await load(clock, "fanout", name, server.port, FANOUT_CONNS, FANOUT_K, FANOUT_FRAME, FANOUT_RUNS);
      push(results, `${name}.fanout`, fan.rate);
      push(results, `${name}.fanoutCpu`, (after - before) / (FANOUT_RUNS * FANOUT_CONNS * FANOUT_K));
      push(results, `${name}.fanoutClientCpu`, fan.clientCpu as number);
      const spread = await load(clock, "fanout", name, server.port, FANOUT_CONNS, SPREAD_K, FANOUT_FRAME, SPREAD_RUNS, "spread");
      push(results, `${name}.spread`, spread.rate);
      push(results, `${name}.spreadCpu`, (after - before) / (SPREAD_RUNS * FANOUT_CONNS * SPREAD_K));
    } finally {
      await server.stop();
    }
    if (round < IDLE_ROUNDS) {
      const [first, next] = await idleBytes(system);
      push(results, `${name}.idleFirst`, first);
      push(results, `${name}.idle`, next);
    }
  }
  for (const system of STREAMERS.map((_, i) => STREAMERS[(i + round) % STREAMERS.length] as System)) {
    const server = await startServer(system);
    try {
      push(results, `${system.name}.stream`, (await load({}, "stream", system.name, server.port, STREAM_ITEMS)).rate);
    } finally {
      await server.stop();
    }
  }
  console.error(`round ${round + 1}/${ROUNDS} done (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}

/**
 * Server RSS growth per idle connection, after a full GC at each reading. Two
 * batches of connections are opened: the first also pays one-time costs
 * (JIT-compiled code, allocator arenas, GC heap blocks; raw Bun's own first
 * batch costs several times its second), so the second batch is the cost of a
 * connection. Both are reported.
 * @returns [first batch, second batch], bytes per connection
 */
/**
 * RSS per idle connection: three batches of IDLE_CONNS. The first pays one-time costs (JIT-compiled code, heap
 * and allocator growth); what a Chatter server let go of after it (the allocator hands pages back to the OS a
 * while later) showed up as a negative second batch, so the steady figure is the third batch's. Each reading
 * is the median of three, a moment apart, each after a full collection.
 * @returns bytes per connection: the first batch's, and the third's
 */
async function idleBytes(system: System): Promise<[number, number]> {
  const server = await startServer(system);
  const batches: { exited: Promise<number>; stdin: { write(s: string): unknown; flush(): unknown } }[] = [];
  const reading = async () => {
    const rss: number[] = [];
    for (let i = 0; i < 3; i++) {
      await Bun.sleep(200);
      rss.push(await server.mem());
    }
    return median(rss);
  };
  try {
    const readings = [await reading()];
    for (const batch of [0, 1, 2]) {
      const proc = Bun.spawn([BUN, `${ROOT}/bench/load.ts`, "idle", system.name, server.port, IDLE_CONNS, batch].map(String), {
        stdin: "pipe",
        stdout: "pipe",
        stderr: "inherit",
      });
      batches.push(proc);
      await lineReader(proc.stdout as ReadableStream<Uint8Array>).next("OPEN");
      readings.push(await reading());
    }
    const [m0, m1, m2, m3] = readings as [number, number, number, number];
    return [(m1 - m0) / IDLE_CONNS, (m3 - m2) / IDLE_CONNS];
  } finally {
    for (const proc of batches) {
      proc.stdin.write("close\n");
      proc.stdin.flush();
    }
    await Promise.all(batches.map((p) => p.exited));
    await server.stop();
  }
}

const m = (key: string) => median(results[key] ?? [Number.NaN]);
const bundle = await measureClientBundle();
const peerBundles = await measurePeerBundles();
const round2 = (x: number) => Math.round(x * 100) / 100;
const figures = {
  seq_ratio_vs_raw: round2(m("chatter.seq") / m("raw.seq")),
  pipelined_ratio_vs_raw: round2(m("chatter.pipe") / m("raw.pipe")),
  // Round-trip latency, Chatter's over raw's: lower is better (the rate ratios above are higher-is-better).
  seq_p50_ratio_vs_raw: round2(m("chatter.seqP50") / m("raw.seqP50")),
  seq_p99_ratio_vs_raw: round2(m("chatter.seqP99") / m("raw.seqP99")),
  pipelined_p99_ratio_vs_raw: round2(m("chatter.pipeP99") / m("raw.pipeP99")),
  server_cpu_per_call_vs_raw: round2(m("chatter.cpu") / m("raw.cpu")),
  vs_socketio_seq: round2(m("chatter.seq") / m("socketio.seq")),
  vs_socketio_pipelined: round2(m("chatter.pipe") / m("socketio.pipe")),
  vs_birpc_pipelined: round2(m("chatter.pipe") / m("birpc.pipe")),
  vs_capnweb_pipelined: round2(m("chatter.pipe") / m("capnweb.pipe")),
  fanout_ratio_vs_raw_publish: round2(m("chatter.fanout") / m("raw.fanout")),
  // The server's side alone: raw's server CPU per delivery over Chatter's (higher is better, as a rate).
  fanout_server_ratio_vs_raw: round2(m("raw.fanoutCpu") / m("chatter.fanoutCpu")),
  fanout_spread_ratio_vs_raw_publish: round2(m("chatter.spread") / m("raw.spread")),
  fanout_spread_server_ratio_vs_raw: round2(m("raw.spreadCpu") / m("chatter.spreadCpu")),
  server_to_client_ratio: round2(m("chatter.s2c") / m("chatter.pipe")),
  stream_ratio_vs_raw: round2(m("chatter.stream") / m("raw.stream")),
  stream_vs_trpc: round2(m("chatter.stream") / m("trpc.stream")),
  stream_vs_capnweb: round2(m("chatter.stream") / m("capnweb.stream")),
  bytes_per_idle_conn: Math.round(m("chatter.idle") - m("raw.idle")),
  client_bundle_gzip_bytes: bundle.gzip,
  rounds: ROUNDS,
  quick,
};

const k = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0));
console.log(
  `\nChatter benchmark: medians of ${ROUNDS} rounds, Bun ${Bun.version}, Node ${await nodeVersion()}, ${navigator.hardwareConcurrency} cores${PIN ? "; 1-in-flight runs with the server on core 0 and the load client on core 1" : ", placement left to the OS"}\n`,
);
console.log("| system | 1 in flight, calls/s | 1,000 in flight, calls/s | server CPU µs per call | client CPU µs per call |");
console.log("|---|--:|--:|--:|--:|");
for (const s of SYSTEMS)
  console.log(
    `| ${s.label} | ${k(m(`${s.name}.seq`))} | ${k(m(`${s.name}.pipe`))} | ${m(`${s.name}.cpu`).toFixed(1)} | ${m(`${s.name}.clientCpu`).toFixed(1)} |`,
  );
console.log("\nlatency, µs: p50 / p99 at 1 and at 1,000 in flight (each call timed by the load client, send to answer)\n");
console.log("| system | 1 in flight, p50 | 1 in flight, p99 | 1,000 in flight, p50 | 1,000 in flight, p99 |");
console.log("|---|--:|--:|--:|--:|");
const us = (x: number) => (x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString("en"));
for (const s of SYSTEMS) {
  const cells = ["seqP50", "seqP99", "pipeP50", "pipeP99"].map((f) => us(m(`${s.name}.${f}`)));
  console.log(`| ${s.label} | ${cells.join(" | ")} |`);
}
console.log(`\n| measure | raw Bun | Chatter |\n|---|--:|--:|`);
console.log(`| fan-out to ${FANOUT_CONNS} subscribers, deliveries/s | ${k(m("raw.fanout"))} | ${k(m("chatter.fanout"))} |`);
const ns = (key: string) => (m(key) * 1000).toFixed(0);
console.log(`| fan-out, server CPU ns per delivery | ${ns("raw.fanoutCpu")} | ${ns("chatter.fanoutCpu")} |`);
console.log(`| fan-out, receivers' CPU ns per delivery (one process) | ${ns("raw.fanoutClientCpu")} | ${ns("chatter.fanoutClientCpu")} |`);
console.log(`| fan-out, one broadcast a tick, deliveries/s | ${k(m("raw.spread"))} | ${k(m("chatter.spread"))} |`);
console.log(`| fan-out, one broadcast a tick, server CPU ns per delivery | ${ns("raw.spreadCpu")} | ${ns("chatter.spreadCpu")} |`);
console.log(
  `| server RSS per idle connection, first ${IDLE_CONNS} (with one-time costs), bytes | ${k(m("raw.idleFirst"))} | ${k(m("chatter.idleFirst"))} |`,
);
console.log(`| server RSS per idle connection, the third ${IDLE_CONNS}, bytes | ${k(m("raw.idle"))} | ${k(m("chatter.idle"))} |`);
console.log(`| server-to-client calls/s, 1,000 in flight | | ${k(m("chatter.s2c"))} |`);
console.log(`\n| stream of ${STREAM_ITEMS.toLocaleString("en")} items, server to client | items/s | vs raw |\n|---|--:|--:|`);
for (const s of STREAMERS)
  console.log(`| ${s.label} | ${k(m(`${s.name}.stream`))} | ${(m(`${s.name}.stream`) / m("raw.stream")).toFixed(2)} |`);
console.log(`\nbrowser client, esbuild --minify then gzip -9: Chatter ${bundle.gzip} B (${bundle.minified} B minified)`);
console.log(
  `the peers' clients, bundled the same way: ${Object.entries(peerBundles)
    .map(([name, gzip]) => `${name} ${gzip} B`)
    .join(", ")}`,
);
if (!quick && !streamOnly) writeFileSync(`${import.meta.dir}/results.svg`, chart());
// 19,000 connections on one instance (bench/scale/): one round here, 2,000 and 5,000 with --quick; the
// three-round run is `npm run bench:scale`.
if (!streamOnly) {
  const { runScale, scaleKeys, scaleOptions, scaleTable } = await import("./scale/run.ts");
  const scale = await runScale(scaleOptions(quick ? "quick" : "bench"));
  console.log(`\nscale: ${scaleTable(scale)}`);
  Object.assign(figures, scaleKeys(scale));
}
console.log(JSON.stringify(figures));

async function nodeVersion(): Promise<string> {
  const proc = Bun.spawn(["node", "--version"], { stdout: "pipe" });
  return (await new Response(proc.stdout).text()).trim();
}

/** A small horizontal bar chart of the call rates, as SVG. */
function chart(): string {
  const rows = SYSTEMS.flatMap((s) => [
    { label: `${s.label}, 1 in flight`, value: m(`${s.name}.seq`), color: s.name === "chatter" ? "#2f7d32" : "#8a8a8a" },
    { label: `${s.label}, 1,000 in flight`, value: m(`${s.name}.pipe`), color: s.name === "chatter" ? "#1b5e20" : "#5f5f5f" },
  ]);
  const max = Math.max(...rows.map((r) => r.value));
  const width = 760;
  const barArea = 380;
  const rowHeight = 22;
  const height = rows.length * rowHeight + 50;
  const bars = rows
    .map((r, i) => {
      const y = 30 + i * rowHeight;
      const w = Math.max(1, (r.value / max) * barArea);
      return `<text x="300" y="${y + 14}" text-anchor="end">${r.label}</text><rect x="310" y="${y + 3}" width="${w.toFixed(1)}" height="15" fill="${r.color}"/><text x="${(316 + w).toFixed(1)}" y="${y + 14}">${k(r.value)}</text>`;
    })
    .join("\n");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="system-ui, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="14" font-weight="bold">Echo calls per second (higher is better), medians of ${ROUNDS} rounds</text>
${bars}
</svg>
`;
}
