/**
 * Resume latency: the time from a client's socket being cut to its session resumed (state back to connected,
 * `resumed` true), with the real client reconnecting through a TCP proxy that chooses the instance it reaches:
 * - local: the same instance, no cluster;
 * - home: the same instance, in a cluster of three;
 * - relayed: another instance of the cluster while the session's home lives (the socket is relayed there);
 * - takeover: another instance after the home was killed with SIGKILL (heartbeat 200 ms on the killed one, so
 *   its presence expires about 0.6 s after its last beat; that wait is part of the figure).
 * And one call's round trip, sequential calls, direct to the home and relayed through another instance.
 */
import { Redis } from "ioredis";
import { type ChatterClient, ConnectionState, createClient } from "../../src/index.ts";
import { tcpProxy } from "../../test/proxy.ts";
import { ECHO, PAYLOAD } from "../procs.ts";
import { type Group, type Instance, newGroup, startInstance, startInstances, stopInstances } from "./processes.ts";

// minDelay 0 would make every retry immediate (the backoff scales it): 1 ms keeps retries cheap but not a spin.
export const RECONNECT = { minDelay: 1, maxDelay: 50 };
type Proxy = Awaited<ReturnType<typeof tcpProxy>>;

export interface Samples {
  ms: number[];
  /** Reconnects that got a fresh session instead of the old one. */
  resets: number;
  /** Resumes that did not finish within the bound. */
  timeouts: number;
}
const samples = (): Samples => ({ ms: [], resets: 0, timeouts: 0 });

/** Resolves at the client's next connect, with whether it resumed; `null` if none comes within `ms`. */
function nextConnect(client: ChatterClient, ms: number): Promise<boolean | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      off();
      resolve(null);
    }, ms);
    const off = client.onStateChange((state, { resumed }) => {
      if (state !== ConnectionState.Connected) return;
      clearTimeout(timer);
      off();
      resolve(resumed);
    });
  });
}

async function connect(proxy: Proxy): Promise<ChatterClient> {
  const client = createClient({ url: proxy.url, reconnect: RECONNECT });
  if (!client.isConnected && (await nextConnect(client, 10_000)) === null) throw new Error("resume bench: a client did not connect");
  await client.call(ECHO, PAYLOAD);
  return client;
}

/** Waits until the session's record is in Redis: only then can another instance find its home or take it over. */
async function recorded(redis: Redis, group: Group, sessionId: string): Promise<void> {
  const deadline = performance.now() + 5000;
  while (!(await redis.exists(`${group.prefix}:kv:session:${sessionId}`))) {
    if (performance.now() > deadline) throw new Error(`resume bench: no record of session ${sessionId} after 5 s`);
    await Bun.sleep(5);
  }
}

/**
 * Points the proxy at `port`, then cuts the client's connection (or runs `drop`) and times the way back.
 * @returns the milliseconds, or the outcome that stopped it
 */
async function resumeOnce(client: ChatterClient, proxy: Proxy, port: number, boundMs: number, drop = () => proxy.cutAll()) {
  proxy.retarget(port);
  const back = nextConnect(client, boundMs);
  const t0 = performance.now();
  drop();
  const resumed = await back;
  const ms = performance.now() - t0;
  if (resumed === null) return "timeout" as const;
  if (!resumed) return "reset" as const;
  await client.call(ECHO, PAYLOAD, { timeout: 5000 }); // the session answers on the new path before the next cut
  return ms;
}

function count(into: Samples, outcome: number | "timeout" | "reset"): void {
  if (outcome === "timeout") into.timeouts++;
  else if (outcome === "reset") into.resets++;
  else into.ms.push(outcome);
}

/** @returns µs per call, `n` sequential calls */
async function timeCalls(client: ChatterClient, n: number): Promise<number[]> {
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await client.call(ECHO, PAYLOAD);
    us.push((performance.now() - t0) * 1000);
  }
  return us;
}

export interface ResumeOptions {
  /** Resumes timed per case (the takeover case: `takeovers`). */
  resumes: number;
  takeovers: number;
  /** Sequential calls timed per path. */
  calls: number;
}

/** A client alone on one instance without Redis: the baseline resume, and the baseline call. */
async function lone(opts: ResumeOptions) {
  const [instance] = (await startInstances(newGroup(undefined), 1)) as [Instance];
  const proxy = await tcpProxy(instance.port);
  const client = await connect(proxy);
  const local = samples();
  try {
    await timeCalls(client, 500); // warm-up
    for (let i = 0; i < 5; i++) await resumeOnce(client, proxy, instance.port, 10_000);
    for (let i = 0; i < opts.resumes; i++) count(local, await resumeOnce(client, proxy, instance.port, 10_000));
    return { local, calls: await timeCalls(client, opts.calls) };
  } finally {
    client.close();
    proxy.stop();
    await stopInstances([instance]);
  }
}

/**
 * One client whose home is A in a cluster of A, B, C: resumes alternate between A (home) and B or C (relayed),
 * then sequential calls alternate in blocks between the direct path and a relayed one.
 */
async function homeAndRelayed(redis: Redis, group: Group, [a, b, c]: Instance[], opts: ResumeOptions) {
  const ports = [a, b, a, c].map((i) => (i as Instance).port);
  const proxy = await tcpProxy(ports[0] as number);
  let client = await connect(proxy);
  const home = samples();
  const relayed = samples();
  const calls = { direct: [] as number[], relayed: [] as number[] };
  try {
    await recorded(redis, group, client.sessionId);
    await timeCalls(client, 500);
    for (let i = 0; i < 8; i++) await resumeOnce(client, proxy, ports[i % 4] as number, 10_000);
    for (let i = 0; i < opts.resumes * 2; i++) {
      const outcome = await resumeOnce(client, proxy, ports[i % 4] as number, 10_000);
      count(i % 2 ? relayed : home, outcome);
      if (typeof outcome !== "number") {
        // Start over with a fresh client at home: this one may be stuck, or its new session lives elsewhere.
        client.close();
        proxy.retarget(ports[0] as number);
        client = await connect(proxy);
        await recorded(redis, group, client.sessionId);
      }
    }
    for (let block = 0; block < 4; block++) {
      // Blocks of direct and relayed calls alternate, so drift in the machine's load falls on both.
      const port = ports[block % 2] as number;
      if ((await resumeOnce(client, proxy, port, 10_000)) === "timeout") throw new Error("resume bench: stuck before the call blocks");
      (block % 2 ? calls.relayed : calls.direct).push(...(await timeCalls(client, Math.ceil(opts.calls / 2))));
    }
    return { home, relayed, calls };
  } finally {
    client.close();
    proxy.stop();
  }
}

/** Each sample: a client on a fresh instance (heartbeat 200 ms), which is then killed; the client reconnects to B or C. */
async function takeovers(redis: Redis, group: Group, survivors: Instance[], opts: ResumeOptions): Promise<Samples> {
  const taken = samples();
  for (let i = 0; i < opts.takeovers; i++) {
    const doomed = await startInstance(group, 200);
    const proxy = await tcpProxy(doomed.port);
    let client: ChatterClient | undefined;
    try {
      client = await connect(proxy);
      await recorded(redis, group, client.sessionId);
      const to = survivors[i % survivors.length] as Instance;
      count(taken, await resumeOnce(client, proxy, to.port, 15_000, () => doomed.proc.kill("SIGKILL")));
    } finally {
      client?.close();
      proxy.stop();
      await doomed.proc.exited;
    }
  }
  return taken;
}

/** Runs every resume case and the call round trips. */
export async function runResume(redisUrl: string, opts: ResumeOptions) {
  const baseline = await lone(opts);
  const redis = new Redis(redisUrl);
  const group = newGroup(redisUrl);
  const instances = await startInstances(group, 3);
  try {
    const cluster = await homeAndRelayed(redis, group, instances, opts);
    const takeover = await takeovers(redis, group, instances.slice(1), opts);
    return {
      local: baseline.local,
      home: cluster.home,
      relayed: cluster.relayed,
      takeover,
      calls: { lone: baseline.calls, direct: cluster.calls.direct, relayed: cluster.calls.relayed },
    };
  } finally {
    redis.disconnect();
    await stopInstances(instances);
  }
}
