/**
 * Resume latency: the time from a client's socket being cut to its session resumed (state back to connected,
 * `resumed` true), with the real client reconnecting through a TCP proxy that chooses the instance it reaches:
 * - local: the same instance, no cluster;
 * - home: the same instance, in a cluster of three;
 * - moved: another instance, nothing in flight: the home hands the session over and it lives there from then on;
 * - relayed: another instance while a call is in flight on the session: the socket is relayed to the home;
 * - takeover: another instance after the home was killed with SIGKILL (heartbeat 200 ms on the killed one, so
 *   its presence expires about 0.6 s after its last beat; that wait is part of the figure).
 * Each resume is checked by asking which instance runs the session afterwards. Then the call round trips of
 * calls.ts, and the cluster's own counters of sessions moved, relayed and taken over.
 */
import { Redis } from "ioredis";
import { type ChatterClient, createClient } from "../../src/index.ts";
import { tcpProxy } from "../../test/proxy.ts";
import { callPaths } from "./calls.ts";
import { type Group, type Instance, newGroup, startInstance, startInstances, stopInstances } from "./processes.ts";
import { WHERE } from "./procs.ts";
import { connect, hold, type Outcome, recordedHome, resumeOnce, type TcpProxy, timeCalls } from "./session.ts";

export interface Samples {
  ms: number[];
  /** Reconnects that got a fresh session instead of the old one. */
  resets: number;
  /** Resumes that did not finish within the bound. */
  timeouts: number;
  /** Resumes that came back on the wrong instance: moved when it should be relayed, or the other way round. */
  misrouted: number;
}
export const samples = (): Samples => ({ ms: [], resets: 0, timeouts: 0, misrouted: 0 });

/**
 * Counts an outcome into `into` (unless it is a warm-up, `into` null).
 * @param port - the instance that should run the session afterwards
 * @returns whether the session resumed and runs there
 */
export function tally(into: Samples | null, outcome: Outcome, port: number): boolean {
  const ok = typeof outcome === "object" && outcome.runsOn === port;
  if (!into) return ok;
  if (outcome === "timeout") into.timeouts++;
  else if (outcome === "reset") into.resets++;
  else if (!ok) into.misrouted++;
  else into.ms.push(outcome.ms);
  return ok;
}

export interface ResumeOptions {
  /** Resumes timed per case (the takeover case: `takeovers`). */
  resumes: number;
  takeovers: number;
}

/** A client alone on one instance without Redis: the baseline resume, and the baseline call. */
export async function lone(opts: ResumeOptions & { calls: number }) {
  const [instance] = (await startInstances(newGroup(undefined), 1)) as [Instance];
  const proxy = await tcpProxy(instance.port);
  const client = await connect(proxy);
  const local = samples();
  try {
    await timeCalls(client, 500); // warm-up
    for (let i = 0; i < 5; i++) tally(null, await resumeOnce(client, proxy, instance.port, 10_000), instance.port);
    for (let i = 0; i < opts.resumes; i++) tally(local, await resumeOnce(client, proxy, instance.port, 10_000), instance.port);
    return { local, calls: await timeCalls(client, opts.calls) };
  } finally {
    client.close();
    proxy.stop();
    await stopInstances([instance]);
  }
}

/** One client and the instance its session lives on, kept as it goes round the cluster. */
interface Tracked {
  client: ChatterClient;
  /** Index of its home in the instances. */
  at: number;
  /** Its home as its record names it. */
  home: string;
}

/**
 * One cycle from home H of the three instances H, O, P: a resume at H, a resume at O with a call in flight
 * (relayed to H), then, the call released, a resume at P (the session moves to P, the next cycle's home).
 * @returns false if a resume went wrong (counted), so the caller starts over with a fresh session
 */
async function cycle(
  redis: Redis,
  group: Group,
  ports: number[],
  proxy: TcpProxy,
  t: Tracked,
  into: Record<"home" | "relayed" | "moved", Samples> | null,
) {
  const [h, o, p] = [0, 1, 2].map((k) => ports[(t.at + k) % ports.length] as number) as [number, number, number];
  if (!tally(into?.home ?? null, await resumeOnce(t.client, proxy, h, 10_000), h)) return false;
  const release = await hold(t.client);
  if (!tally(into?.relayed ?? null, await resumeOnce(t.client, proxy, o, 10_000), h)) return false;
  await release();
  if (!tally(into?.moved ?? null, await resumeOnce(t.client, proxy, p, 10_000), p)) return false;
  t.at = (t.at + 2) % ports.length;
  t.home = await recordedHome(redis, group, t.client.sessionId, t.home);
  return true;
}

/** One client in a cluster of three, resumed at its home, relayed and moved in turn (see `cycle`). */
export async function homeRelayedMoved(redis: Redis, group: Group, instances: Instance[], opts: ResumeOptions) {
  const ports = instances.map((i) => i.port);
  const proxy = await tcpProxy(ports[0] as number);
  const t: Tracked = { client: await connect(proxy), at: 0, home: "" };
  const out = { home: samples(), relayed: samples(), moved: samples() };
  const fresh = async () => {
    t.client.close();
    proxy.retarget(ports[t.at] as number);
    t.client = await connect(proxy);
    t.home = await recordedHome(redis, group, t.client.sessionId);
  };
  try {
    t.home = await recordedHome(redis, group, t.client.sessionId);
    await timeCalls(t.client, 500);
    for (let i = 0; i < 3 + opts.resumes; i++) {
      // Start over with a fresh client at home after a failure: this one may be stuck, or live elsewhere.
      if (!(await cycle(redis, group, ports, proxy, t, i < 3 ? null : out))) await fresh();
    }
    return out;
  } finally {
    t.client.close();
    proxy.stop();
  }
}

/** Each sample: a client on a fresh instance (heartbeat 200 ms), which is then killed; the client reconnects to B or C. */
export async function takeovers(redis: Redis, group: Group, survivors: Instance[], opts: ResumeOptions): Promise<Samples> {
  const taken = samples();
  for (let i = 0; i < opts.takeovers; i++) {
    const doomed = await startInstance(group, 200);
    const proxy = await tcpProxy(doomed.port);
    let client: ChatterClient | undefined;
    try {
      client = await connect(proxy);
      await recordedHome(redis, group, client.sessionId);
      const to = survivors[i % survivors.length] as Instance;
      tally(taken, await resumeOnce(client, proxy, to.port, 15_000, () => doomed.proc.kill("SIGKILL")), to.port);
    } finally {
      client?.close();
      proxy.stop();
      await doomed.proc.exited;
    }
  }
  return taken;
}

/** @returns the cluster's counters summed over the instances, each asked directly by a client of its own */
async function counters(instances: Instance[]) {
  const sum = { moved: 0, relayed: 0, takenOver: 0 };
  for (const instance of instances) {
    const client = createClient({ url: `ws://127.0.0.1:${instance.port}/`, reconnect: false });
    try {
      const at = await client.call(WHERE, undefined, { timeout: 5000 });
      sum.moved += at.moved;
      sum.relayed += at.relayed;
      sum.takenOver += at.takenOver;
    } finally {
      client.close();
    }
  }
  return sum;
}

/** Runs every resume case and the call round trips. */
export async function runResume(redisUrl: string, opts: ResumeOptions & { calls: number }) {
  const baseline = await lone(opts);
  const redis = new Redis(redisUrl);
  const group = newGroup(redisUrl);
  const instances = await startInstances(group, 3);
  try {
    const cluster = await homeRelayedMoved(redis, group, instances, opts);
    const calls = await callPaths(redis, group, instances, opts.calls);
    const takeover = await takeovers(redis, group, instances.slice(1), opts);
    return {
      local: baseline.local,
      ...cluster,
      takeover,
      calls: { lone: baseline.calls, ...calls },
      stats: await counters(instances),
    };
  } finally {
    redis.disconnect();
    await stopInstances(instances);
  }
}
