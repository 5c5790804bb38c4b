/**
 * Call round trips in a cluster, sequential calls, on three paths that all end at one instance O:
 * - direct: a client connected to O, where its session began;
 * - relayed: a client whose session began on H, connected to O while one call is held in flight on the session
 *   (so it cannot move): every call goes over Redis to H and back;
 * - moved: a client whose session began on H, reconnected to O with nothing in flight: the session moved to O,
 *   so its calls should cost what direct ones do.
 * Each client has its own proxy (a cut takes every connection through one). Each round times one block per path,
 * in an order of its own, and moves on to the next pair of instances, so drift in the machine's load falls on
 * every path.
 * Every block is checked by asking which instance runs the session, before and after it.
 */
import type { Redis } from "ioredis";
import type { ChatterClient } from "../../src/index.ts";
import { tcpProxy } from "../../test/proxy.ts";
import type { Group, Instance } from "./processes.ts";
import { connect, hold, recordedHome, resumeOnce, runsOn, type TcpProxy, timeCalls } from "./session.ts";

const PATHS = ["direct", "relayed", "moved"] as const;
type Path = (typeof PATHS)[number];
/** One round per order of the paths, so each path runs first, last and after each other path equally often. */
const ORDERS = [
  [0, 1, 2],
  [0, 2, 1],
  [1, 0, 2],
  [1, 2, 0],
  [2, 0, 1],
  [2, 1, 0],
];

/** Where a round's clients connect, and the proxies to stop after it. */
interface Cluster {
  redis: Redis;
  group: Group;
  proxies: TcpProxy[];
}

/**
 * A client connected through a proxy of its own to `first`, then (its record written, so `then` can find it)
 * reconnected to `then`, whose session runs on `on`.
 */
async function client(cluster: Cluster, first: number, then: number, on: number, before?: (c: ChatterClient) => Promise<unknown>) {
  const proxy = await tcpProxy(first);
  cluster.proxies.push(proxy);
  const c = await connect(proxy);
  await before?.(c);
  if (then !== first) {
    await recordedHome(cluster.redis, cluster.group, c.sessionId);
    const outcome = await resumeOnce(c, proxy, then, 10_000);
    if (typeof outcome !== "object") throw new Error(`call bench: a resume before the calls ended in a ${outcome}`);
  }
  const at = await runsOn(c);
  if (at !== on) throw new Error(`call bench: a session ran on port ${at}, not ${on}, before the calls`);
  return c;
}

/** Times `n` calls, which must run on `port` before and after. */
async function block(c: ChatterClient, n: number, port: number, path: Path): Promise<number[]> {
  const check = async () => {
    const at = await runsOn(c);
    if (at !== port) throw new Error(`call bench: ${path} calls ran on the instance at port ${at}, not ${port}`);
  };
  await check();
  const us = await timeCalls(c, n);
  await check();
  return us;
}

/** @returns µs per call on each path, about `calls` per path */
export async function callPaths(redis: Redis, group: Group, instances: Instance[], calls: number): Promise<Record<Path, number[]>> {
  const ports = instances.map((i) => i.port);
  const out: Record<Path, number[]> = { direct: [], relayed: [], moved: [] };
  const n = Math.ceil(calls / ORDERS.length);
  for (const [round, order] of ORDERS.entries()) {
    const h = ports[round % ports.length] as number;
    const o = ports[(round + 1) % ports.length] as number;
    const cluster: Cluster = { redis, group, proxies: [] };
    const clients: ChatterClient[] = [];
    let release: (() => Promise<void>) | undefined;
    try {
      clients.push(await client(cluster, o, o, o));
      clients.push(await client(cluster, h, o, h, async (c) => (release = await hold(c))));
      clients.push(await client(cluster, h, o, o));
      for (const c of clients) await timeCalls(c, 200); // warm-up
      for (const i of order) {
        const path = PATHS[i] as Path;
        out[path].push(...(await block(clients[i] as ChatterClient, n, path === "relayed" ? h : o, path)));
      }
      await release?.();
    } finally {
      for (const c of clients) c.close();
      for (const p of cluster.proxies) p.stop();
    }
  }
  return out;
}
