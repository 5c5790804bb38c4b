/**
 * A Redis cluster backend: several Chatter servers act as one.
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
 * Channels: `<prefix>:bcast` carries broadcasts; `<prefix>:call` carries
 * calls for a client on some instance, answered on `<prefix>:reply:<id>`.
 * Presence: each instance keeps `<prefix>:presence:<id>` (its subscriber
 * counts per topic) alive with a short expiry, and lists itself in
 * `<prefix>:instances`; an instance that dies stops refreshing and drops out.
 */
import { Redis } from "ioredis";
import { ChatterError, fromWireError, toWireError } from "../errors.ts";
import type { ClusterBackend, ClusterBroadcast, ClusterNode, ClusterReply } from "../server/cluster.ts";
import { decode, encode } from "../wire/codec.ts";

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

/** Counters of what the backend did; `lost` counts broadcasts that could not be sent to Redis. */
export interface RedisClusterStats {
  published: number;
  received: number;
  lost: number;
}

/**
 * Creates a Redis cluster backend, to pass as `createServer({ cluster })`.
 * @param options - `url` or `client`, and optional `prefix` and heartbeat timing
 * @returns the backend; `stats` counts what it did
 */
export function redisCluster(options: RedisClusterOptions): ClusterBackend & { stats: RedisClusterStats; ready: Promise<void> } {
  const prefix = options.prefix ?? "chatter";
  const heartbeatMs = options.heartbeatMs ?? 2000;
  const ttlMs = options.presenceTtlMs ?? heartbeatMs * 3;
  const commands =
    options.client ?? new Redis(options.url ?? "redis://127.0.0.1:6379", { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  const subscriber = commands.duplicate({ enableOfflineQueue: true, autoResubscribe: true });
  const stats: RedisClusterStats = { published: 0, received: 0, lost: 0 };
  const pending = new Map<
    number,
    { resolve(v: unknown): void; reject(e: unknown): void; misses: number; expected: number; timer: ReturnType<typeof setTimeout> }
  >();
  let node: ClusterNode | undefined;
  let nextCall = 1;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let subscribed: () => void = () => {};
  /** Resolves once this instance listens on its channels: broadcasts from others reach it from then on. */
  const ready = new Promise<void>((resolve) => {
    subscribed = resolve;
  });
  const channel = { bcast: `${prefix}:bcast`, call: `${prefix}:call`, reply: (id: string) => `${prefix}:reply:${id}` };
  const presenceKey = (id: string) => `${prefix}:presence:${id}`;

  /** Publishes, and on failure counts and reports: nothing is dropped silently. */
  const publish = (to: string, message: unknown, what: string): Promise<number> =>
    commands.publish(to, Buffer.from(encode(message))).then(
      (receivers) => {
        stats.published++;
        return receivers;
      },
      (err: Error) => {
        stats.lost++;
        node?.report(
          new ChatterError("DISCONNECTED", `cluster: ${what} lost, Redis unreachable (${err.message}); ${stats.lost} lost so far`),
        );
        return 0;
      },
    );

  const beat = () => {
    if (!node) return;
    commands
      .multi()
      .set(presenceKey(node.instanceId), Buffer.from(encode(node.topicCounts())), "PX", ttlMs)
      .sadd(`${prefix}:instances`, node.instanceId)
      .exec()
      .catch((err: Error) => node?.log?.(`cluster: presence heartbeat failed: ${err.message}`));
  };

  const onCall = (req: { id: number; from: string; clientId: string; name: string; input: unknown; timeout: number }) => {
    const self = node as ClusterNode;
    const answer = self.callLocal(req.clientId, req.name, req.input, req.timeout);
    const reply = (r: ClusterReply) => void publish(channel.reply(req.from), r, `answer to call "${req.name}"`);
    if (!answer) return reply({ id: req.id, miss: true });
    answer.then(
      (value) => reply({ id: req.id, ok: true, value }),
      (err) => reply({ id: req.id, ok: false, error: toWireError(err, req.name, false) }),
    );
  };

  const onReply = (r: ClusterReply) => {
    const p = pending.get(r.id);
    if (!p) return;
    if ("miss" in r) {
      // Every instance that is not the client's says so; when all have, nobody has it.
      if (++p.misses < p.expected) return;
      settle(r.id)?.reject(new ChatterError("NOT_FOUND", "no instance has this client"));
    } else if (r.ok) settle(r.id)?.resolve(r.value);
    else settle(r.id)?.reject(fromWireError(r.error));
  };

  const settle = (id: number) => {
    const p = pending.get(id);
    if (!p) return undefined;
    pending.delete(id);
    clearTimeout(p.timer);
    return p;
  };

  return {
    stats,
    ready,
    start(local) {
      node = local;
      subscriber.subscribe(channel.bcast, channel.call, channel.reply(local.instanceId)).then(
        () => subscribed(),
        (err: Error) => local.report(err),
      );
      subscriber.on("messageBuffer", (from: Buffer, message: Buffer) => {
        let body: unknown;
        try {
          body = decode(message);
        } catch (err) {
          return local.report(new ChatterError("PROTOCOL", `cluster: undecodable message on ${from}: ${(err as Error).message}`));
        }
        const name = from.toString();
        stats.received++;
        if (name === channel.bcast) {
          const b = body as ClusterBroadcast;
          if (b.origin !== local.instanceId) local.deliver(b);
        } else if (name === channel.call) onCall(body as Parameters<typeof onCall>[0]);
        else onReply(body as ClusterReply);
      });
      beat();
      heartbeat = setInterval(beat, heartbeatMs);
      (heartbeat as { unref?: () => void }).unref?.();
    },
    publish(b) {
      void publish(channel.bcast, b, `broadcast of "${b.name}"`);
    },
    callRemote(clientId, name, input, timeout) {
      const self = node as ClusterNode;
      const id = nextCall++;
      return new Promise((resolve, reject) => {
        const wait = timeout > 0 ? timeout : 30_000;
        const timer = setTimeout(
          () => settle(id)?.reject(new ChatterError("TIMEOUT", `call to "${name}" on client ${clientId} timed out after ${wait} ms`)),
          wait,
        );
        pending.set(id, { resolve, reject, misses: 0, expected: Number.POSITIVE_INFINITY, timer });
        publish(channel.call, { id, from: self.instanceId, clientId, name, input, timeout }, `call to "${name}"`).then((receivers) => {
          const p = pending.get(id);
          if (!p) return;
          if (receivers === 0) return settle(id)?.reject(new ChatterError("DISCONNECTED", `call to "${name}" could not reach Redis`));
          // The receivers include this instance, which answers "miss" too.
          p.expected = receivers;
          if (p.misses >= receivers) settle(id)?.reject(new ChatterError("NOT_FOUND", `no instance has client ${clientId}`));
        });
      });
    },
    async presence(topic) {
      const self = node as ClusterNode;
      const ids = await commands.smembers(`${prefix}:instances`);
      const others = ids.filter((id) => id !== self.instanceId);
      const values = others.length ? await commands.mgetBuffer(...others.map(presenceKey)) : [];
      let total = self.topicCounts()[topic] ?? 0;
      const gone: string[] = [];
      values.forEach((value, i) => {
        if (value) total += (decode(value) as Record<string, number>)[topic] ?? 0;
        else gone.push(others[i] as string);
      });
      // Instances whose presence expired are dead: forget them.
      if (gone.length) await commands.srem(`${prefix}:instances`, ...gone);
      return total;
    },
    async close() {
      clearInterval(heartbeat);
      for (const id of [...pending.keys()]) settle(id)?.reject(new ChatterError("DISCONNECTED", "cluster backend closed"));
      if (node)
        await commands
          .multi()
          .del(presenceKey(node.instanceId))
          .srem(`${prefix}:instances`, node.instanceId)
          .exec()
          .catch(() => {});
      subscriber.disconnect();
      if (!options.client) commands.disconnect();
    },
  };
}
