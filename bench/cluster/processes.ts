/**
 * The processes one run of the cluster bench owns: a redis-server and Chatter instances. Every one is tracked so
 * `stopAll` can kill what is left, whether the run ends, fails or is interrupted.
 */
import { freePort, readUntil, startRedis } from "../../test/processes.ts";

type Proc = ReturnType<typeof Bun.spawn>;
const owned = new Set<Proc>();

export interface Instance {
  proc: Proc;
  port: number;
}

/** A cluster's settings; `redisUrl` undefined is a lone instance without Redis. */
export interface Group {
  redisUrl: string | undefined;
  prefix: string;
  secret: string;
}

let groups = 0;

/** @returns settings for a new cluster (or lone instance): a prefix of its own, so its keys meet no other run's */
export function newGroup(redisUrl: string | undefined): Group {
  const id = `${process.pid}-${++groups}`;
  return { redisUrl, prefix: `bench-cluster-${id}`, secret: `bench-cluster-secret-of-32-bytes-${id}` };
}

/**
 * Starts one instance of a group.
 * @param heartbeatMs - its presence heartbeat (default: the cluster's 2 s)
 * @returns the process and its port, once it listens
 */
export async function startInstance(group: Group, heartbeatMs?: number): Promise<Instance> {
  const env: Record<string, string | undefined> = { ...process.env, PREFIX: group.prefix, SECRET: group.secret };
  if (group.redisUrl) env.REDIS_URL = group.redisUrl;
  else delete env.REDIS_URL;
  if (heartbeatMs) env.HEARTBEAT_MS = String(heartbeatMs);
  const proc = Bun.spawn([process.execPath, `${import.meta.dir}/instance.ts`], { env, stdout: "pipe", stderr: "inherit" });
  owned.add(proc);
  void proc.exited.then(() => owned.delete(proc));
  const ready = await readUntil(proc.stdout as ReadableStream<Uint8Array>, /READY \d+/);
  return { proc, port: Number(/READY (\d+)/.exec(ready)?.[1]) };
}

/** Starts `count` instances of a group side by side. */
export function startInstances(group: Group, count: number): Promise<Instance[]> {
  return Promise.all(Array.from({ length: count }, () => startInstance(group)));
}

/** Stops instances (SIGTERM) and waits until they are gone. */
export async function stopInstances(instances: Instance[]): Promise<void> {
  for (const i of instances) i.proc.kill();
  await Promise.all(instances.map((i) => i.proc.exited));
}

/** Starts a redis-server on a free port that keeps nothing on disk. */
export async function startOwnRedis(): Promise<{ url: string }> {
  const port = freePort();
  const proc = await startRedis(port);
  owned.add(proc);
  return { url: `redis://127.0.0.1:${port}` };
}

/** Kills every process this run started and has not seen exit. */
export function stopAll(): void {
  for (const proc of owned) proc.kill("SIGKILL");
  owned.clear();
}
