/**
 * The scale scenario: one Bun server process (raw Bun or Chatter, alternating
 * within each round) and a few client processes holding thousands of sockets
 * each, from 127.0.0.x source addresses. At each step of connections it reads
 * the server's RSS after a full GC, times a broadcast fan-out to every socket
 * (counted by the clients: each must get every broadcast) and runs one echo
 * call a second per socket for a while, timing each on the client's clock.
 * The server's open-file limit caps the count; the scenario says so when it does.
 */
import { merge, quantile } from "./histogram.ts";

const BUN = process.execPath;
const DIR = import.meta.dir;
/** Files a server needs besides its sockets (stdio, epoll, timers, the listener), with room to spare. */
const FD_RESERVE = 200;
/** Sockets per client process at most, so each stays far from its own open-file limit and from one core. */
const PER_CLIENT = 5000;
/** Source addresses per client process: 127.0.0.<10 + index * ADDRESSES + j>. */
const ADDRESSES = 4;
/** A first batch that pays one-time costs (JIT, arenas, heap growth) before the steps are measured. */
const WARM_CONNS = 1000;
/** A broadcast frame's bytes, as in bench/run.ts's fan-out row. */
const FRAME = 64;

export interface ScaleOptions {
  /** Connection counts to measure at, ascending. */
  steps: number[];
  rounds: number;
  /** Broadcasts per fan-out run (three runs after a warm-up; the median counts). */
  broadcasts: number;
  /** Seconds of one call a second per socket, at each step. */
  callSeconds: number;
  log: (line: string) => void;
  /** Only these systems (default: raw and Chatter). */
  systems?: string[];
}

/** What one step measured, per system, medians over rounds. */
export interface StepFigures {
  conns: number;
  /** Server RSS growth per connection opened since the step before (read after that step's runs), bytes. */
  bytesPerConn: Record<string, number>;
  /** Broadcast deliveries per second, counted by the clients. */
  fanout: Record<string, number>;
  /** Round-trip µs at one call a second per socket. */
  p50: Record<string, number>;
  p99: Record<string, number>;
  /** Calls not made because the socket's previous one was still unanswered a second later. */
  skipped: Record<string, number>;
}

export interface ScaleResult {
  steps: StepFigures[];
  /** The server's open-file limit, and the count it allowed. */
  fdLimit: number;
  capped: boolean;
}

type Proc = ReturnType<typeof spawnLines>;

function spawnLines(args: string[]) {
  const proc = Bun.spawn([BUN, ...args], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    proc,
    send(line: string) {
      // A process that has died already: its exit is reported where its reply is awaited.
      if (proc.exitCode !== null) return;
      proc.stdin.write(`${line}\n`);
      proc.stdin.flush();
    },
    /** @returns the next line starting with `prefix`, without it; throws if the process ends first */
    async next(prefix: string, timeoutMs = 120_000): Promise<string> {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const at = buffer.split("\n");
        for (let i = 0; i < at.length - 1; i++) {
          if ((at[i] as string).startsWith(prefix)) {
            buffer = at.slice(i + 1).join("\n");
            return (at[i] as string).slice(prefix.length).trim();
          }
        }
        const left = deadline - performance.now();
        if (left <= 0) throw new Error(`no "${prefix}" from ${args.join(" ")} within ${timeoutMs} ms`);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<null>((resolve) => (timer = setTimeout(resolve, left, null)));
        const read = await Promise.race([reader.read(), late]);
        clearTimeout(timer);
        if (read === null) continue;
        if (read.done) throw new Error(`${args.join(" ")} ended before printing "${prefix}"`);
        buffer += decoder.decode(read.value);
      }
    },
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/** Every process started, so an error or Ctrl-C stops them all. */
const running = new Set<Proc>();
export function stopAll(): void {
  for (const p of running) p.proc.kill();
  running.clear();
}

/** @returns the server's open-file limit (it prints it), read from a throwaway server process */
async function readLimit(): Promise<number> {
  const server = spawnLines([`${DIR}/server.ts`, "raw"]);
  running.add(server);
  const limit = Number((await server.next("READY ")).split(" ")[1]);
  server.proc.kill();
  running.delete(server);
  return limit;
}

/** One system through every step; @returns per step: bytes per connection, fan-out rate, latency histogram */
async function runSystem(system: string, steps: number[], opts: ScaleOptions) {
  const server = spawnLines([`${DIR}/server.ts`, system]);
  running.add(server);
  const port = Number((await server.next("READY ")).split(" ")[0]);
  const count = Math.ceil((steps.at(-1) as number) / PER_CLIENT);
  const clients = Array.from({ length: count }, (_, i) =>
    spawnLines([`${DIR}/client.ts`, system, String(port), String(i), String(ADDRESSES)]),
  );
  for (const c of clients) running.add(c);
  const all = (command: string, reply: string) => {
    for (const c of clients) c.send(command);
    return Promise.all(clients.map((c) => c.next(reply)));
  };
  const mem = async () => {
    server.send("mem");
    return Number((await server.next("MEM ")).split(" ")[0]);
  };
  /** Opens sockets, spread over the clients, until `n` are open; @returns the RSS then */
  const openTo = async (n: number) => {
    for (const [i, c] of clients.entries()) c.send(`open ${Math.floor(n / count) + (i < n % count ? 1 : 0)}`);
    await Promise.all(clients.map((c) => c.next("OPEN ")));
    await Bun.sleep(500);
    return mem();
  };
  const out: { bytesPerConn: number; fanout: number; buckets: number[][]; skipped: number }[] = [];
  const t0 = performance.now();
  const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;
  try {
    const base = await mem();
    let before = await openTo(WARM_CONNS);
    let prev = WARM_CONNS;
    opts.log(
      `  ${system}: first ${WARM_CONNS} connections ${Math.round((before - base) / WARM_CONNS)} B each (one-time costs included; ${elapsed()})`,
    );
    for (const n of steps) {
      const rss = await openTo(n);
      const bytesPerConn = (rss - before) / (n - prev);
      [before, prev] = [rss, n];
      const rates: number[] = [];
      for (let run = 0; run < 4; run++) {
        await all(`expect ${opts.broadcasts} ${FRAME - 8}`, "EXPECTING");
        const sent = performance.now();
        server.send(`fanout ${opts.broadcasts} ${FRAME}`);
        await Promise.all(clients.map((c) => c.next("GOT", 60_000)));
        if (run > 0) rates.push((n * opts.broadcasts * 1000) / (performance.now() - sent));
      }
      const calls = (await all(`calls ${opts.callSeconds}`, "CALLS ")).map(
        (l) => JSON.parse(l) as { skipped: number; buckets: number[][] },
      );
      const fanout = median(rates);
      // The runs left answers kept and garbage behind in the sockets open so far: the next step counts from here.
      before = await mem();
      out.push({ bytesPerConn, fanout, buckets: calls.flatMap((c) => c.buckets), skipped: calls.reduce((s, c) => s + c.skipped, 0) });
      const p99 = quantile(merge(out.at(-1)?.buckets ?? []), 0.99);
      opts.log(
        `  ${system} at ${n}: ${Math.round(bytesPerConn)} B/conn, fan-out ${Math.round(fanout / 1000)}k/s, p99 ${Math.round(p99)} µs (${elapsed()})`,
      );
    }
  } finally {
    for (const c of clients) {
      c.send("close");
      running.delete(c);
    }
    await Promise.all(clients.map((c) => c.proc.exited));
    server.proc.kill();
    await server.proc.exited;
    running.delete(server);
  }
  return out;
}

/** Runs the scenario; @returns medians over rounds per step and system */
export async function runScale(opts: ScaleOptions): Promise<ScaleResult> {
  const fdLimit = await readLimit();
  const cap = fdLimit - FD_RESERVE;
  const steps = [...new Set(opts.steps.map((s) => Math.min(s, cap)))].filter((s) => s > WARM_CONNS);
  const capped = opts.steps.some((s) => s > cap);
  if (capped) opts.log(`the server's open-file limit is ${fdLimit}: connections capped at ${cap} (${FD_RESERVE} files kept for the rest)`);
  const samples = new Map<string, { bytesPerConn: number[]; fanout: number[]; buckets: number[][]; skipped: number[] }>();
  for (let round = 0; round < opts.rounds; round++) {
    const order = round % 2 ? ["chatter", "raw"] : ["raw", "chatter"];
    for (const system of order.filter((s) => opts.systems?.includes(s) ?? true)) {
      opts.log(`round ${round + 1}/${opts.rounds}, ${system}`);
      const steps_ = await runSystem(system, steps, opts);
      steps_.forEach((s, i) => {
        const key = `${system}.${i}`;
        const into = samples.get(key) ?? { bytesPerConn: [], fanout: [], buckets: [], skipped: [] };
        into.bytesPerConn.push(s.bytesPerConn);
        into.fanout.push(s.fanout);
        into.buckets.push(...s.buckets);
        into.skipped.push(s.skipped);
        samples.set(key, into);
      });
    }
  }
  const figures = steps.map((conns, i): StepFigures => {
    const f: StepFigures = { conns, bytesPerConn: {}, fanout: {}, p50: {}, p99: {}, skipped: {} };
    for (const system of ["raw", "chatter"]) {
      const s = samples.get(`${system}.${i}`);
      if (!s) continue;
      f.bytesPerConn[system] = median(s.bytesPerConn);
      f.fanout[system] = median(s.fanout);
      // Latencies of every round together: a p99 of all calls, not a median of p99s.
      const merged = merge(s.buckets);
      f.p50[system] = quantile(merged, 0.5);
      f.p99[system] = quantile(merged, 0.99);
      f.skipped[system] = s.skipped.reduce((a, b) => a + b, 0);
    }
    return f;
  });
  return { steps: figures, fdLimit, capped };
}
