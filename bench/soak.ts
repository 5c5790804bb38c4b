/**
 * `npm run soak`: many clients doing messy load through TCP proxies that cut
 * connections, against one Chatter server in its own process, to find leaks
 * and calls that settle wrongly (issue 11). Every call must settle as its kind
 * expects; the server's heap (after forced GC) must stay flat under load and
 * come back near its baseline once every client has left. The last line is
 * the figures as JSON; the exit code is 1 when a check failed.
 * Flags: --seconds 300 --clients 400 --procs 3 (see DEFAULTS for the rest).
 */
import { parseArgs } from "node:util";
import { tcpProxy } from "../test/proxy.ts";
import type { Tally } from "./soak/agent.ts";
import { type Child, killChildren, spawnChild } from "./soak/children.ts";
import { judge, type Memory, type ServerStats, sumTallies } from "./soak/verdict.ts";

export interface SoakOptions {
  /** Length of the load phase. */
  seconds: number;
  /** Clients connected at any time, spread over `procs` processes. */
  clients: number;
  procs: number;
  /** The server's resume window, ms; the run waits this long (and a second) after the clients leave. */
  resumeWindow: number;
  /**
   * Broadcasts the server's replay log keeps (its default is 10 000). Small, about a resume window's worth, so
   * the log fills early and its legitimate growth does not pass for a leak.
   */
  replay: number;
  /** Proxies in front of the server; clients are spread over them, and a cut kills all of one proxy's connections. */
  proxies: number;
  /** Every `cutEvery` ms, `cutShare` of the proxies (so about that share of the connections) are cut. */
  cutEvery: number;
  cutShare: number;
  /** Share of each process's clients that leave, and are replaced, every second. */
  churn: number;
  /** Heap growth allowed from the end of warm-up to the end of the load, as a fraction. */
  maxGrowth: number;
  /** After the clients leave, the heap may exceed its baseline by this many MB, or by this factor, whichever allows more. */
  leaveMB: number;
  leaveFactor: number;
}

export const DEFAULTS: SoakOptions = {
  seconds: 300,
  clients: 400,
  procs: 3,
  resumeWindow: 2000,
  replay: 500,
  proxies: 10,
  cutEvery: 2000,
  cutShare: 0.2,
  churn: 0.02,
  maxGrowth: 0.15,
  leaveMB: 3,
  leaveFactor: 1.5,
};

export interface SoakResult {
  /** The figures, for the one-line JSON summary. */
  summary: Record<string, unknown>;
  /** What went wrong, one line each; empty when every check passed. */
  failures: string[];
}

/** Warm-up: a quarter of the run, at least 5 s and at most 60 s. */
const warmUpSeconds = (seconds: number) => Math.min(60, Math.max(5, seconds / 4));
const SOAK = import.meta.dir;

async function memory(server: Child): Promise<Memory> {
  server.send("heap");
  return JSON.parse(await server.next("HEAP", 30_000)) as Memory;
}

type Proxy = Awaited<ReturnType<typeof tcpProxy>>;

/** Cuts a random `share` of the proxies every `every` ms, except while held; @returns its controls */
function startCutter(proxies: Proxy[], every: number, share: number) {
  let held = false;
  const timer = setInterval(() => {
    if (held) return;
    const pool = [...proxies];
    for (let i = 0; i < Math.ceil(proxies.length * share) && pool.length; i++) {
      pool.splice(Math.floor(Math.random() * pool.length), 1)[0]?.cutAll();
    }
  }, every);
  return {
    hold(on: boolean) {
      held = on;
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * A heap reading inside the load phase, taken in a quiet moment so calls in flight do not blur it: no cuts, the
 * clients make no new calls and wait for theirs to settle. The sessions stay connected.
 */
async function quietMemory(server: Child, clients: Child[], cutter: ReturnType<typeof startCutter>): Promise<Memory> {
  cutter.hold(true);
  for (const c of clients) c.send("pause");
  await Promise.all(clients.map((c) => c.next("PAUSED", 30_000)));
  const reading = await memory(server);
  for (const c of clients) c.send("resume");
  cutter.hold(false);
  return reading;
}

/** Runs the soak once; children and proxies are gone when it returns or throws. */
export async function runSoak(options: Partial<SoakOptions> = {}, log: (line: string) => void = () => {}): Promise<SoakResult> {
  const o = { ...DEFAULTS, ...options };
  const proxies: Proxy[] = [];
  let cutter: ReturnType<typeof startCutter> | undefined;
  try {
    const server = spawnChild("soak server", `${SOAK}/soak/server.ts`, [String(o.resumeWindow), String(o.replay)]);
    const port = Number(await server.next("READY", 15_000));
    const baseline = await memory(server);
    for (let i = 0; i < o.proxies; i++) proxies.push(await tcpProxy(port));
    const urls = proxies.map((p) => p.url);
    const clients = Array.from({ length: o.procs }, (_, index) => {
      const share = Math.floor(o.clients / o.procs) + (index < o.clients % o.procs ? 1 : 0);
      const config = { index, clients: share, urls, churn: o.churn };
      return spawnChild(`soak clients ${index}`, `${SOAK}/soak/clients.ts`, [JSON.stringify(config)]);
    });
    await Promise.all(clients.map((c) => c.next("READY", 40_000)));
    log(`soak: ${o.clients} clients in ${o.procs} processes connected; load for ${o.seconds} s`);
    const start = Date.now();
    cutter = startCutter(proxies, o.cutEvery, o.cutShare);
    await Bun.sleep(start + warmUpSeconds(o.seconds) * 1000 - Date.now());
    const warm = await quietMemory(server, clients, cutter);
    log(`soak: warm heap ${(warm.heap / 2 ** 20).toFixed(1)} MB, ${warm.sessions} sessions`);
    await Bun.sleep(start + o.seconds * 1000 - Date.now());
    const end = await quietMemory(server, clients, cutter);
    cutter.stop();
    for (const c of clients) c.send("stop");
    const tallies = await Promise.all(clients.map(async (c) => JSON.parse(await c.next("REPORT", 60_000)) as Tally));
    server.send("quiet");
    await server.next("QUIET", 10_000);
    await Bun.sleep(o.resumeWindow + 1000);
    const afterLeave = await memory(server);
    server.send("stats");
    const stats = JSON.parse(await server.next("STATS", 10_000)) as ServerStats;
    const cuts = proxies.reduce((sum, p) => sum + p.cuts, 0);
    return judge(o, sumTallies(tallies), stats, { baseline, warm, end, afterLeave }, cuts);
  } finally {
    cutter?.stop();
    for (const p of proxies) p.stop();
    killChildren();
  }
}

/** `--seconds 60 --resume-window 2000 ...`: every option as a kebab-case flag. */
function fromFlags(): Partial<SoakOptions> {
  const flag = (key: string) => key.replace(/([a-z])([A-Z]+)/g, "$1-$2").toLowerCase();
  const keys = Object.keys(DEFAULTS);
  const { values } = parseArgs({ options: Object.fromEntries(keys.map((k) => [flag(k), { type: "string" as const }])) });
  const picked = keys.filter((k) => values[flag(k)] !== undefined).map((k) => [k, Number(values[flag(k)])]);
  for (const [k, v] of picked) if (!Number.isFinite(v)) throw new Error(`--${flag(k as string)} needs a number`);
  return Object.fromEntries(picked);
}

if (import.meta.main) {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      killChildren();
      process.exit(130);
    });
  }
  const { summary, failures } = await runSoak(fromFlags(), console.log);
  for (const failure of failures) console.log(`FAIL ${failure}`);
  console.log(JSON.stringify(summary));
  process.exit(failures.length ? 1 : 0);
}
