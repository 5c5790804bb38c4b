/**
 * The chaos scenario of issue #15, for any system that implements `System`:
 * instance processes sharing one redis-server (appendonly), a proxy that
 * routes each new connection to a random instance and cuts everything every
 * 100-500 ms, clients subscribed to one topic, broadcasts from every instance,
 * calls both ways, a Redis restart and/or an instance SIGKILLed mid-run.
 * `runScenario` returns what was lost, doubled, reordered, failed or run
 * twice; tally.ts counts them. contract.ts has the types, instance-kit.ts
 * the instance side.
 *
 * Instances write what their handlers ran to a results file with synchronous
 * writes, so a SIGKILLed instance's records survive it.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { freePort, readUntil } from "../../test/processes.ts";
import { answerFor, type ClientHandle, DEFAULTS, type InstanceRecord, type ScenarioOptions, type System, sleep } from "./contract.ts";
import { type ChaosProxy, chaosProxy } from "./proxy.ts";
import { type Figures, type Observed, tally } from "./tally.ts";

export * from "./contract.ts";
export { instanceKit } from "./instance-kit.ts";
export * from "./tally.ts";

async function waitUntil(done: () => boolean, deadline: number, step = 50): Promise<boolean> {
  while (!done()) {
    if (performance.now() >= deadline) return false;
    await sleep(step);
  }
  return true;
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
