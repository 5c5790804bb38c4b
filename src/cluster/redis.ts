/**
 * A Redis cluster backend: several Chatter servers act as one. Only the bus
 * and the presence store are here; the cluster core (server/cluster-core.ts)
 * does the rest.
 *
 * Why ioredis: it reconnects by itself with a backoff we can shape, and it
 * re-subscribes its channels after a reconnect (`autoResubscribe`), which is
 * exactly what pub/sub fan-out needs. We turn its offline queue off for
 * publishing, so a broadcast during an outage fails at once and is counted
 * and reported, instead of arriving minutes late. node-redis also reconnects,
 * but there a subscriber must be its own client with its own reconnect
 * handling, and its offline queue has to be managed the same way.
 * Docs: https://github.com/redis/ioredis
 *
 * Every channel the core names is `<prefix>:<channel>`. Presence: each
 * instance keeps `<prefix>:presence:<id>` alive with a short expiry, and
 * lists itself in `<prefix>:instances`; an instance that dies stops
 * refreshing, and its entry expires while its id stays listed until forgotten.
 */
import { Redis } from "ioredis";
import type { ClusterBackend, ClusterStats } from "../server/cluster.ts";

/** Options of {@link redisCluster}. */
export interface RedisClusterOptions {
  /** A Redis URL, e.g. `redis://localhost:6379`. */
  url?: string;
  /** Or a client you already have; a second connection for subscribing is made with `duplicate()`. */
  client?: Redis;
  /** Prefix of every key and channel; instances with the same prefix form one cluster. Default `chatter`. */
  prefix?: string;
  /** Milliseconds between presence heartbeats. Default 2 000. */
  heartbeatMs?: number;
  /** Milliseconds a presence entry lives without a heartbeat. Default 3 heartbeats. */
  presenceTtlMs?: number;
}

/**
 * Creates a Redis cluster backend, to pass as `createServer({ cluster })`.
 * @param options - `url` or `client`, and optional `prefix` and heartbeat timing
 * @returns the backend; `stats` counts what it did, `ready` resolves once it listens (broadcasts from others reach it from then on)
 */
export function redisCluster(options: RedisClusterOptions): ClusterBackend & { stats: ClusterStats; ready: Promise<void> } {
  const prefix = options.prefix ?? "chatter";
  const commands =
    options.client ?? new Redis(options.url ?? "redis://127.0.0.1:6379", { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  // Subscribing may start before the connection is up, so this one queues; it only ever subscribes.
  const subscriber = commands.duplicate({ enableOfflineQueue: true, autoResubscribe: true });
  const instances = `${prefix}:instances`;
  const presenceKey = (id: string) => `${prefix}:presence:${id}`;
  let listening: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    listening = resolve;
  });

  return {
    stats: { published: 0, received: 0, lost: 0 },
    ready,
    heartbeatMs: options.heartbeatMs,
    presenceTtlMs: options.presenceTtlMs,
    publish: (channel, message) => commands.publish(`${prefix}:${channel}`, Buffer.from(message)),
    async subscribe(channels, listener) {
      subscriber.on("messageBuffer", (from: Buffer, message: Buffer) => listener(from.toString().slice(prefix.length + 1), message));
      await subscriber.subscribe(...channels.map((c) => `${prefix}:${c}`));
      listening();
    },
    async putPresence(id, value, ttlMs) {
      await commands.multi().set(presenceKey(id), Buffer.from(value), "PX", ttlMs).sadd(instances, id).exec();
    },
    async readPresence() {
      const ids = await commands.smembers(instances);
      const values = ids.length ? await commands.mgetBuffer(...ids.map(presenceKey)) : [];
      return new Map(ids.map((id, i) => [id, values[i] ?? undefined]));
    },
    async forgetPresence(ids) {
      await commands
        .multi()
        .del(...ids.map(presenceKey))
        .srem(instances, ...ids)
        .exec();
    },
    async close() {
      subscriber.disconnect();
      if (!options.client) commands.disconnect();
    },
  };
}
