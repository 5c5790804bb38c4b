/**
 * The chaos scenario of issue #15, for any system that implements `System`:
 * instance processes sharing one redis-server (appendonly), a proxy that
 * routes each new connection to a random instance and cuts everything every
 * 100-500 ms, clients subscribed to one topic, broadcasts from every instance,
 * calls both ways, a Redis restart and/or an instance SIGKILLed mid-run.
 * `runScenario` returns what was lost, doubled, reordered, failed or run
 * twice; `tally`, at the end of this file, counts them.
 *
 * Instances write what their handlers ran to a results file with synchronous
 * writes, so a SIGKILLed instance's records survive it.
 */
import { mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { createInterface } from "node:readline";
import { freePort, readUntil } from "../../test/processes.ts";
import { type ChaosProxy, chaosProxy } from "./proxy.ts";

export interface BroadcastEvent {
  origin: number;
  n: number;
}

/** What a client does with what reaches it; the system wires these to its own events. */
export interface ClientHooks {
  onEvent(event: BroadcastEvent): void;
  /** A server-to-client call; resolves to the answer. */
  onServerCall(key: string): Promise<string>;
  /** The client reconnected but its session was not resumed. */
  onReset(): void;
}

export interface ClientHandle {
  /** A client-to-server call; rejects with an error `codeOf` can name. */
  call(key: string, slowMs: number, timeoutMs: number): Promise<string>;
  close(): void;
}

/** The code `System.codeOf` gives a call failed because the instance holding the caller's session died with it. */
export const HOME_DIED = "DISCONNECTED (its instance died)";

export interface System {
  name: string;
  /** argv of one instance process; it follows the contract of `runInstance`. */
  instanceCommand(): Promise<string[]>;
  /** Connects a client and subscribes it; resolves once the first subscription is done. */
  connect(url: string, hooks: ClientHooks): Promise<ClientHandle>;
  /** The error code of a failed call (`TIMEOUT`, `DISCONNECTED`, ...). */
  codeOf(error: unknown): string;
}

export interface ScenarioOptions {
  seconds: number;
  instances: number;
  clients: number;
  /** Each instance broadcasts every this many ms. */
  broadcastMs: number;
  /** Calls each client keeps going at once. */
  clientCallsInFlight: number;
  /** Each instance starts a call to one of its clients every this many ms, with at most `serverCallsInFlight` at once. */
  serverCallMs: number;
  serverCallsInFlight: number;
  cutMs: [number, number];
  /** Fraction of the run at which Redis is shut down and started again; none if undefined. */
  restartRedisAt?: number;
  /** Fraction of the run at which instance 0 gets SIGKILL; none if undefined. */
  killInstanceAt?: number;
  /** Every `slowEvery`th client call makes its handler take `slowMs`; the others take 0-20 ms. */
  slowEvery: number;
  slowMs: number;
  /** Each client's pause between two calls of one lane, ms, as [min, max]. */
  callGapMs: [number, number];
  callTimeoutMs: number;
  /** Bound on waiting for everything to settle after the chaos stops. */
  settleMs: number;
  /** Route every connection to this instance (checks the harness without hopping). */
  pin?: number;
  /** Keep the run's folder (results files, instance logs, Redis AOF) and log where it is. */
  keep?: boolean;
  log?: (line: string) => void;
}

export const DEFAULTS: ScenarioOptions = {
  seconds: 15,
  instances: 3,
  clients: 6,
  broadcastMs: 20,
  clientCallsInFlight: 3,
  serverCallMs: 25,
  serverCallsInFlight: 3,
  cutMs: [100, 500],
  restartRedisAt: 0.5,
  slowEvery: 5,
  slowMs: 300,
  callGapMs: [10, 40],
  callTimeoutMs: 5000,
  settleMs: 7000,
};

/** The answer both ends give for `key`, so a caller can tell its own result from another's. */
export const answerFor = (key: string) => `done:${key}`;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitUntil(done: () => boolean, deadline: number, step = 50): Promise<boolean> {
  while (!done()) {
    if (performance.now() >= deadline) return false;
    await sleep(step);
  }
  return true;
}

/** One line of an instance's results file. */
export type InstanceRecord =
  | { t: "ran" | "answered"; key: string }
  | { t: "issued" | "sent"; n: number }
  | { t: "scall"; key: string }
  | { t: "sdone"; key: string; result?: string; code?: string }
  | { t: "stats"; stats: Record<string, number> };

/** What an instance does with its server, for `runInstance`. */
export interface InstanceDriver<Target> {
  port: number;
  broadcast(event: BroadcastEvent): unknown;
  /** The connections this instance serves right now. */
  targets(): Target[];
  callClient(target: Target, key: string, timeoutMs: number): Promise<string>;
  codeOf(error: unknown): string;
  /** The system's own counters, recorded when the instance stops (Chatter: the cluster's stats). */
  stats?(): Record<string, number>;
}

/** The instance side of the contract: env in, a results file out, "go"/"stop" on stdin, "READY <port>"/"DONE" on stdout. */
export function instanceKit() {
  const env = (name: string) => process.env[name] ?? "";
  const fd = openSync(env("RESULTS"), "a");
  const record = (r: InstanceRecord) => writeSync(fd, `${JSON.stringify(r)}\n`);
  const origin = Number(env("ORIGIN"));
  return {
    origin,
    redisUrl: env("REDIS_URL"),
    prefix: env("PREFIX"),
    /** The client-to-server handler's body: records that it ran, takes `slowMs`, answers. */
    async work(key: string, slowMs: number): Promise<string> {
      record({ t: "ran", key });
      await sleep(slowMs);
      record({ t: "answered", key });
      return answerFor(key);
    },
    /** Prints READY, then broadcasts and calls between "go" and "stop"; prints DONE once its calls settle. */
    run<Target>(driver: InstanceDriver<Target>): void {
      const timers: ReturnType<typeof setInterval>[] = [];
      const inFlight = new Set<Promise<unknown>>();
      let n = 0;
      let seq = 0;
      const broadcast = () => {
        n++;
        const event = { origin, n };
        record({ t: "issued", n });
        Promise.resolve(driver.broadcast(event)).then(
          () => record({ t: "sent", n: event.n }),
          (err) => console.error(`broadcast ${event.n}: ${String(err)}`),
        );
      };
      const callOne = () => {
        if (inFlight.size >= Number(env("SERVER_CALLS_IN_FLIGHT"))) return;
        const targets = driver.targets();
        const target = targets[Math.floor(Math.random() * targets.length)];
        if (target === undefined) return;
        const key = `s${origin}-${++seq}`;
        record({ t: "scall", key });
        const call = driver.callClient(target, key, Number(env("CALL_TIMEOUT_MS"))).then(
          (result) => record({ t: "sdone", key, result }),
          (err) => record({ t: "sdone", key, code: driver.codeOf(err) }),
        );
        inFlight.add(call);
        void call.finally(() => inFlight.delete(call));
      };
      createInterface({ input: process.stdin }).on("line", async (line) => {
        if (line === "go") {
          timers.push(setInterval(broadcast, Number(env("BROADCAST_MS"))), setInterval(callOne, Number(env("SERVER_CALL_MS"))));
        } else if (line === "stop") {
          for (const t of timers) clearInterval(t);
          await Promise.allSettled([...inFlight]);
          if (driver.stats) record({ t: "stats", stats: driver.stats() });
          console.log("DONE");
        }
      });
      console.log(`READY ${driver.port}`);
    },
  };
}

interface Instance {
  proc: ReturnType<typeof Bun.spawn>;
  port: number;
  results: string;
  dead: boolean;
  done: boolean;
}

/** Everything a run started, so that it can all be stopped, whatever happened. */
interface Running {
  dir: string;
  redis?: ReturnType<typeof Bun.spawn>;
  instances: Instance[];
  clients: ClientHandle[];
  proxy?: ChaosProxy;
  /** Set once the run tears down: a client that connects later is closed at once. */
  over: boolean;
}

function send(instance: Instance, line: string) {
  if (instance.dead) return;
  const stdin = instance.proc.stdin as import("bun").FileSink;
  stdin.write(`${line}\n`);
  stdin.flush();
}

const REDIS_ARGS = (port: number, dir: string) => [
  ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir],
  ...["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
];

async function startRedis(port: number, dir: string) {
  const proc = Bun.spawn(["redis-server", ...REDIS_ARGS(port, dir)], { stdout: "pipe" });
  await within(readUntil(proc.stdout as ReadableStream<Uint8Array>, /Ready to accept connections/), 5000, "redis-server to start");
  return proc;
}

async function portOpen(port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

async function redisKeys(port: number): Promise<string> {
  const cli = Bun.spawn(["redis-cli", "-p", String(port), "dbsize"], { stdout: "pipe", stderr: "ignore" });
  return (await new Response(cli.stdout).text()).trim();
}

/** A real restart: graceful SHUTDOWN (AOF flushed), the process gone, the port closed, a new process on the same port and dir. */
async function restartRedis(run: Running, port: number, log: (line: string) => void): Promise<number> {
  const old = run.redis as ReturnType<typeof Bun.spawn>;
  const before = await redisKeys(port);
  const started = performance.now();
  await Bun.spawn(["redis-cli", "-p", String(port), "shutdown"], { stdout: "ignore", stderr: "ignore" }).exited;
  await within(old.exited, 5000, "redis-server to exit after SHUTDOWN");
  if (await portOpen(port)) throw new Error("redis port still open after redis-server exited");
  run.redis = await startRedis(port, run.dir);
  if (run.redis.pid === old.pid) throw new Error("redis restart kept its pid");
  const downMs = Math.round(performance.now() - started);
  log(`redis restarted: pid ${old.pid} -> ${run.redis.pid}, down ${downMs} ms, keys ${before} before, ${await redisKeys(port)} after`);
  return downMs;
}

/** @returns `promise`, or a rejection naming `what` after `ms` */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${ms} ms for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function startInstance(system: System, run: Running, index: number, env: Record<string, string>): Promise<void> {
  const results = `${run.dir}/instance-${index}.jsonl`;
  const proc = Bun.spawn(await system.instanceCommand(), {
    env: { ...process.env, ...env, ORIGIN: String(index), RESULTS: results },
    stdin: "pipe",
    stdout: "pipe",
    stderr: Bun.file(`${run.dir}/instance-${index}.log`),
  });
  const instance: Instance = { proc, port: 0, results, dead: false, done: false };
  run.instances[index] = instance;
  const ready = await within(readUntil(proc.stdout as ReadableStream<Uint8Array>, /READY \d+/), 10_000, `${system.name} instance ${index}`);
  instance.port = Number(/READY (\d+)/.exec(ready)?.[1]);
}

function connectClients(system: System, run: Running, observed: Observed, count: number): Promise<unknown> {
  const connecting = Array.from({ length: count }, async (_, c) => {
    const seen = observed.events[c] as string[];
    const client = await system.connect((run.proxy as ChaosProxy).url, {
      onEvent: (e) => void seen.push(`${e.origin}:${e.n}`),
      onServerCall: async (key) => {
        observed.serverCallRuns.set(key, (observed.serverCallRuns.get(key) ?? 0) + 1);
        await sleep(Math.random() * 10);
        return answerFor(key);
      },
      onReset: () => void observed.resets++,
    });
    if (run.over) client.close();
    else run.clients[c] = client;
  });
  return within(Promise.all(connecting), 10_000, `${system.name} clients to connect and subscribe`);
}

/** Each client keeps `clientCallsInFlight` calls going while `running()`; resolves once every call settled. */
function driveCalls(system: System, o: ScenarioOptions, run: Running, observed: Observed, running: () => boolean): Promise<unknown> {
  return Promise.all(
    run.clients.flatMap((client, c) => {
      let seq = 0;
      return Array.from({ length: o.clientCallsInFlight }, async () => {
        while (running()) {
          const key = `c${c}-${++seq}`;
          const slowMs = seq % o.slowEvery === 0 ? o.slowMs : Math.random() * 20;
          const outcome: { result?: string; code?: string } = {};
          observed.clientCalls.set(key, outcome);
          try {
            outcome.result = await client.call(key, slowMs, o.callTimeoutMs);
          } catch (err) {
            outcome.code = system.codeOf(err);
          }
          await sleep(o.callGapMs[0] + Math.random() * (o.callGapMs[1] - o.callGapMs[0]));
        }
      });
    }),
  );
}

/** Waits, at most until `deadline`, for the calls and the instances to finish, then for broadcasts to stop arriving. */
async function settle(run: Running, observed: Observed, calls: Promise<unknown>, deadline: number): Promise<boolean> {
  const state = { calls: false };
  calls.then(() => {
    state.calls = true;
  });
  for (const i of run.instances) {
    if (i.dead) continue;
    readUntil(i.proc.stdout as ReadableStream<Uint8Array>, /DONE/).then(
      () => {
        i.done = true;
      },
      () => {},
    );
  }
  const finished = () => state.calls && run.instances.every((i) => i.dead || i.done);
  await waitUntil(finished, deadline);
  // Broadcasts replayed after the last reconnect may trail the calls: wait until none came for a second.
  let last = -1;
  let quietSince = performance.now();
  await waitUntil(() => {
    const got = observed.events.reduce((sum, e) => sum + e.length, 0);
    if (got !== last) [last, quietSince] = [got, performance.now()];
    return performance.now() - quietSince > 1000;
  }, deadline);
  return finished();
}

function stopAll(run: Running) {
  run.over = true;
  for (const c of run.clients) c.close();
  run.proxy?.stop();
  for (const i of run.instances) i.proc.kill("SIGKILL");
  run.redis?.kill("SIGKILL");
}

/** Runs the scenario once and returns its figures. Every process it starts is gone when it returns or throws. */
export async function runScenario(system: System, options: Partial<ScenarioOptions> = {}): Promise<Figures> {
  const o = { ...DEFAULTS, ...options };
  const log = o.log ?? (() => {});
  const run: Running = { dir: mkdtempSync(`${tmpdir()}/cluster-chaos-`), instances: [], clients: [], over: false };
  // Should the test runner give up on us and exit, the children go too.
  const onExit = () => stopAll(run);
  process.once("exit", onExit);
  const redisPort = freePort();
  try {
    run.redis = await startRedis(redisPort, run.dir);
    const env = {
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      PREFIX: `chaos-${Date.now()}`,
      SECRET: "cluster-chaos-secret-0123456789abcdef",
      BROADCAST_MS: String(o.broadcastMs),
      SERVER_CALL_MS: String(o.serverCallMs),
      SERVER_CALLS_IN_FLIGHT: String(o.serverCallsInFlight),
      CALL_TIMEOUT_MS: String(o.callTimeoutMs),
    };
    await Promise.all(Array.from({ length: o.instances }, (_, i) => startInstance(system, run, i, env)));
    const proxy = chaosProxy(
      run.instances.map((i) => i.port),
      o.pin,
    );
    run.proxy = proxy;
    const observed: Observed = {
      events: Array.from({ length: o.clients }, () => []),
      clientCalls: new Map(),
      serverCallRuns: new Map(),
      resets: 0,
    };
    await connectClients(system, run, observed, o.clients);
    log(`${system.name}: ${o.instances} instances, ${o.clients} clients up; chaos for ${o.seconds} s`);

    let running = true;
    const calls = driveCalls(system, o, run, observed, () => running);
    for (const i of run.instances) send(i, "go");
    proxy.startCutting(...o.cutMs);
    const chaos = { redisDownMs: undefined as number | undefined, killed: undefined as number | undefined };
    const at = (fraction: number | undefined, act: () => Promise<void>) =>
      fraction === undefined ? undefined : sleep(o.seconds * 1000 * fraction).then(act);
    const acts = [
      at(o.restartRedisAt, async () => {
        chaos.redisDownMs = await restartRedis(run, redisPort, log);
      }),
      at(o.killInstanceAt, async () => {
        const victim = run.instances[0] as Instance;
        victim.dead = true;
        victim.proc.kill("SIGKILL");
        proxy.drop(0);
        chaos.killed = 0;
        log("instance 0 killed");
      }),
    ];
    await sleep(o.seconds * 1000);
    await Promise.all(acts);
    running = false;
    proxy.calm();
    for (const i of run.instances) send(i, "stop");
    const settled = await settle(run, observed, calls, performance.now() + o.settleMs);
    const records = run.instances.map((i) => readRecords(i.results));
    const dead = run.instances.map((i) => i.dead);
    return tally(system.name, o, observed, records, dead, { cuts: proxy.cuts, routed: proxy.routed, ...chaos, settled });
  } finally {
    stopAll(run);
    await Promise.all([...run.instances.map((i) => i.proc.exited), run.redis?.exited]);
    process.off("exit", onExit);
    if (o.keep) log(`kept ${run.dir}`);
    else rmSync(run.dir, { recursive: true, force: true });
  }
}

function readRecords(path: string): InstanceRecord[] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  // A SIGKILL can cut the last line short.
  return text.split("\n").flatMap((line) => {
    try {
      return line ? [JSON.parse(line) as InstanceRecord] : [];
    } catch {
      return [];
    }
  });
}

/** What the harness saw on the client side. */
export interface Observed {
  /** Per client, the broadcasts it got as "origin:n", in arrival order. */
  events: string[][];
  /** Per client-to-server call key, its result or error code (neither: still pending). */
  clientCalls: Map<string, { result?: string; code?: string }>;
  /** Per server-to-client call key, how often a client handler ran it. */
  serverCallRuns: Map<string, number>;
  resets: number;
}

export interface CallFigures {
  made: number;
  /** Settled with its own result. */
  ok: number;
  /** Settled with a result that is not its own. */
  wrong: number;
  /** Rejected, by error code (excused ones left out). */
  failed: Record<string, number>;
  /** Never settled within the bound. */
  hung: number;
  /** Handler ran two times or more. */
  ranTwice: number;
  /** Answered with its result, yet no handler ran. */
  ranNever: number;
}

export interface Figures {
  system: string;
  seconds: number;
  /** The instances' own counters, summed (Chatter: sessions moved, sockets relayed, sessions taken over...). */
  systemStats: Record<string, number>;
  cuts: number;
  /** New connections the proxy sent to each instance. */
  routed: number[];
  redisDownMs: number | undefined;
  killed: number | undefined;
  /** Whether every call settled and every instance finished within the bound. */
  settled: boolean;
  broadcasts: {
    expected: number;
    got: number;
    lost: number;
    doubled: number;
    unexpected: number;
    outOfOrder: number;
  };
  /** Pairs of clients whose sequences, over the broadcasts both got, differ. */
  order: { pairs: number; disagree: number; example: string | undefined };
  /** `excused`: calls that failed with DISCONNECTED and ran on the killed instance, or failed with HOME_DIED and ran nowhere else. */
  clientCalls: CallFigures & { excused: number };
  /** `callerDied`: calls made by the killed instance that it never saw settle. */
  serverCalls: CallFigures & { callerDied: number };
  resets: number;
  /** A few calls that did not go right, with where their handler ran and answered ("ran@0 answered@0"); lost broadcasts by origin. */
  samples: string[];
}

function emptyCalls(): CallFigures {
  return { made: 0, ok: 0, wrong: 0, failed: {}, hung: 0, ranTwice: 0, ranNever: 0 };
}

function countOutcome(f: CallFigures, key: string, outcome: { result?: string; code?: string } | undefined, runs: number) {
  f.made++;
  if (runs >= 2) f.ranTwice++;
  if (outcome?.result !== undefined) {
    if (outcome.result === answerFor(key)) f.ok++;
    else f.wrong++;
    if (runs === 0) f.ranNever++;
  } else if (outcome?.code !== undefined) f.failed[outcome.code] = (f.failed[outcome.code] ?? 0) + 1;
  else f.hung++;
}

function tallyBroadcasts(events: string[][], records: InstanceRecord[][], dead: boolean[]) {
  const expected = new Set<string>();
  for (const [origin, rs] of records.entries()) {
    let last = 0;
    for (const r of rs) if (r.t === (dead[origin] ? "sent" : "issued")) last = Math.max(last, r.n);
    // A dead instance's broadcast counts if it said it sent it, or if any client got it.
    if (dead[origin]) for (const id of events.flat()) if (id.startsWith(`${origin}:`)) last = Math.max(last, Number(id.split(":")[1]));
    for (let n = 1; n <= last; n++) expected.add(`${origin}:${n}`);
  }
  const b = { expected: expected.size * events.length, got: 0, lost: 0, doubled: 0, unexpected: 0, outOfOrder: 0 };
  const firsts: string[][] = [];
  /** Per origin, the broadcasts some client lacks. */
  const lostBy = new Map<string, string[]>();
  for (const seen of events) {
    const counts = new Map<string, number>();
    const first: string[] = [];
    const highest = new Map<string, number>();
    for (const id of seen) {
      b.got++;
      counts.set(id, (counts.get(id) ?? 0) + 1);
      if (counts.get(id) !== 1) continue;
      first.push(id);
      const [origin, n] = id.split(":") as [string, string];
      if (Number(n) < (highest.get(origin) ?? 0)) b.outOfOrder++;
      highest.set(origin, Math.max(Number(n), highest.get(origin) ?? 0));
    }
    for (const [id, count] of counts) {
      b.doubled += count - 1;
      if (!expected.has(id)) b.unexpected++;
    }
    for (const id of expected) {
      if (counts.has(id)) continue;
      b.lost++;
      const origin = id.split(":")[0] as string;
      const missed = lostBy.get(origin) ?? [];
      lostBy.set(origin, missed);
      if (!missed.includes(id)) missed.push(id);
    }
    firsts.push(first);
  }
  const lostNotes = [...lostBy].map(
    ([origin, ids]) => `origin ${origin}: ${ids.length} broadcasts missed by some client, ${ids[0]} to ${ids.at(-1)}`,
  );
  return { broadcasts: b, order: compareOrders(firsts), lostNotes };
}

function compareOrders(firsts: string[][]): Figures["order"] {
  const order: Figures["order"] = { pairs: 0, disagree: 0, example: undefined };
  for (let a = 0; a < firsts.length; a++) {
    for (let b = a + 1; b < firsts.length; b++) {
      order.pairs++;
      const inB = new Set(firsts[b]);
      const inA = new Set(firsts[a]);
      const seqA = (firsts[a] as string[]).filter((id) => inB.has(id));
      const seqB = (firsts[b] as string[]).filter((id) => inA.has(id));
      const at = seqA.findIndex((id, i) => id !== seqB[i]);
      if (at < 0) continue;
      order.disagree++;
      order.example ??= `client ${a} got ${seqA[at]} where client ${b} got ${seqB[at]} (common position ${at})`;
    }
  }
  return order;
}

/** Counts everything the scenario checks, from what the clients saw and what the instances recorded. */
export function tally(
  system: string,
  o: ScenarioOptions,
  observed: Observed,
  records: InstanceRecord[][],
  dead: boolean[],
  run: Pick<Figures, "cuts" | "routed" | "redisDownMs" | "killed" | "settled">,
): Figures {
  const runs = new Map<string, number>();
  const ranOnDead = new Set<string>();
  const where = new Map<string, string[]>();
  const samples: string[] = [];
  const sample = (key: string, outcome: { result?: string; code?: string } | undefined, serverRuns?: number) => {
    if (samples.length >= 8 || outcome?.result === answerFor(key)) return;
    const trail = serverRuns === undefined ? (where.get(key) ?? []).join(" ") || "never ran" : `client ran it ${serverRuns}x`;
    samples.push(`${key}: ${outcome?.code ?? outcome?.result ?? "hung"} (${trail})`);
  };
  const serverCalls = { ...emptyCalls(), callerDied: 0 };
  for (const [origin, rs] of records.entries()) {
    const outcomes = new Map<string, { result?: string; code?: string } | undefined>();
    for (const r of rs) {
      if (r.t === "ran" || r.t === "answered") where.set(r.key, [...(where.get(r.key) ?? []), `${r.t}@${origin}`]);
      if (r.t === "ran") {
        runs.set(r.key, (runs.get(r.key) ?? 0) + 1);
        if (dead[origin]) ranOnDead.add(r.key);
      } else if (r.t === "scall") outcomes.set(r.key, undefined);
      else if (r.t === "sdone") outcomes.set(r.key, r);
    }
    for (const [key, outcome] of outcomes) {
      if (dead[origin] && !outcome) serverCalls.callerDied++;
      else {
        countOutcome(serverCalls, key, outcome, observed.serverCallRuns.get(key) ?? 0);
        sample(key, outcome, observed.serverCallRuns.get(key) ?? 0);
      }
    }
  }
  const { broadcasts, order, lostNotes } = tallyBroadcasts(observed.events, records, dead);
  samples.push(...lostNotes);
  const clientCalls = { ...emptyCalls(), excused: 0 };
  // Sent to the instance holding the caller's session when it died: it may have had the call, so the call fails
  // with DISCONNECTED whether or not it ran there (never twice). The system names that failure HOME_DIED
  // (Chatter: WELCOME's callsLost), and such a call must not have run anywhere else.
  const excused = (key: string, code: string | undefined) =>
    (code === "DISCONNECTED" && ranOnDead.has(key)) || (code === HOME_DIED && (runs.get(key) ?? 0) === (ranOnDead.has(key) ? 1 : 0));
  for (const [key, outcome] of observed.clientCalls) {
    if (excused(key, outcome.code)) {
      clientCalls.made++;
      clientCalls.excused++;
      if ((runs.get(key) ?? 0) >= 2) clientCalls.ranTwice++;
    } else {
      countOutcome(clientCalls, key, outcome, runs.get(key) ?? 0);
      sample(key, outcome);
    }
  }
  const systemStats: Record<string, number> = {};
  for (const rs of records) {
    for (const r of rs) if (r.t === "stats") for (const [k, v] of Object.entries(r.stats)) systemStats[k] = (systemStats[k] ?? 0) + v;
  }
  return {
    system,
    seconds: o.seconds,
    systemStats,
    ...run,
    broadcasts,
    order,
    clientCalls,
    serverCalls,
    resets: observed.resets,
    samples,
  };
}

/** @returns one line per figure that should be zero but is not (empty when the guarantees held) */
export function problems(f: Figures): string[] {
  const out: string[] = [];
  const nonzero = (name: string, value: number) => value !== 0 && out.push(`${name}: ${value}`);
  nonzero("broadcasts lost", f.broadcasts.lost);
  nonzero("broadcasts doubled", f.broadcasts.doubled);
  nonzero("broadcasts unexpected", f.broadcasts.unexpected);
  nonzero("broadcasts out of order per origin", f.broadcasts.outOfOrder);
  nonzero("client pairs disagreeing on order", f.order.disagree);
  for (const [name, calls] of [
    ["client->server", f.clientCalls],
    ["server->client", f.serverCalls],
  ] as const) {
    nonzero(`${name} calls wrong`, calls.wrong);
    for (const [code, count] of Object.entries(calls.failed)) nonzero(`${name} calls failed ${code}`, count);
    nonzero(`${name} calls hung`, calls.hung);
    nonzero(`${name} handlers ran twice`, calls.ranTwice);
    nonzero(`${name} answered without running`, calls.ranNever);
  }
  nonzero("session resets", f.resets);
  if (!f.settled) out.push("did not settle within the bound");
  return out;
}
