/**
 * A Redis cluster backend: several Chatter servers act as one. Here are only the bus, the log, a key-value
 * store and presence (server/cluster.ts has the contract); the cluster core does the rest.
 *
 * Why ioredis: it reconnects by itself with a backoff, `duplicate()` makes the extra connections from the
 * user's options, and it has Lua scripts and binary replies (the `...Buffer` commands) with types; node-redis
 * would do as well, with more wiring for the subscriber. Every connection made here fails its commands at once while Redis
 * is down (no offline queue, no retries), since the core counts and retries what matters; and every one
 * has an 'error' listener, since ioredis prints an unhandled error event at each failed reconnect.
 * Docs: https://github.com/redis/ioredis
 *
 * Connections: commands (yours if you pass `client`), a subscriber (`duplicate()`) and, made at the first
 * waiting read, a reader, so an XREAD BLOCK does not hold up other commands.
 *
 * Keys, under `<prefix>`:
 * - `<prefix>:<channel>`: the bus, plain pub/sub.
 * - `<prefix>:log`: a stream of entries with ids `<seq>-0` and one field, trimmed to about `maxLogEntries`
 *   and expiring `ttlMs` after the last append.
 * - `<prefix>:log:seq` (the last seq) and `<prefix>:log:epoch` (made with the log): two small keys that
 *   never expire, so the numbering survives an idle log. A Redis that loses its data loses the epoch too,
 *   and the next user makes a new one.
 * - `<prefix>:log:origin:<origin>`: the last counter each instance appended, for `ttlMs`.
 * - `<prefix>:kv:<key>`: session records. `<prefix>:presence:<id>` and the set `<prefix>:instances`:
 *   presence; an instance that dies stops refreshing, and its entry expires while its id stays listed.
 *
 * Sizes in Redis 7.0 (MEMORY USAGE of the stream before and after 1 000 appends, and of one record;
 * test/cluster-backend.test.ts prints them):
 * - per broadcast: its entry's bytes + about 26 bytes for a 100-byte entry (+17 at 20 bytes). Redis packs
 *   entries into nodes of at most 4 KB, so larger ones cost relatively more: +157 at 500 bytes, +301 at 2 KB;
 * - per session: a 200-byte record under an 18-byte key takes 296 bytes; 300 to 350 with its expiry and its
 *   share of Redis's key tables (INFO used_memory over 1 000 records).
 * So the default log of 10 000 entries of 100 bytes holds about 1.3 MB, and 10 000 sessions about 3 MB.
 */
import { createHash, randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { type ClusterBackend, type ClusterStats, emptyStats, type LogEntry, type LogRead } from "../server/cluster.ts";

/** Options of {@link redisCluster}. */
export interface RedisClusterOptions {
  /** A Redis URL, e.g. `redis://localhost:6379`. */
  url?: string;
  /** Or a client you already have (`close()` leaves it open); the other connections are made with `duplicate()`. */
  client?: Redis;
  /** Prefix of every key and channel; instances with the same prefix form one cluster. Default `chatter`. */
  prefix?: string;
  /** Milliseconds between presence heartbeats. Default 2 000. */
  heartbeatMs?: number;
  /** Milliseconds a presence entry lives without a heartbeat. Default 3 heartbeats. */
  presenceTtlMs?: number;
  /** Entries the log keeps at least; Redis trims whole nodes (up to 100 entries, 4 KB), so a few more stay. Default 10 000. */
  maxLogEntries?: number;
  /** Gets one line per connection when it fails, until it is back. Default: nothing is logged. */
  log?: (msg: string) => void;
}

// Both scripts start here. KEYS[1] epoch, KEYS[2] seq; ARGV[1] an epoch to make if there is none.
const EPOCH = `local epoch = redis.call('GET', KEYS[1])
if not epoch then epoch = ARGV[1]; redis.call('SET', KEYS[1], epoch) end
`;

// KEYS[3] the stream, KEYS[4] the origin's key; ARGV[2] counter, [3] entry, [4] ttlMs, [5] maxLogEntries.
const APPEND = `${EPOCH}local counter = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[4]))
if last and counter <= last then return 'duplicate' end
if last and counter > last + 1 then
  return redis.error_reply('OUT_OF_ORDER: counter ' .. counter .. ' follows ' .. last .. ' for ' .. KEYS[4])
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('SET', KEYS[4], counter, 'PX', ARGV[4])
return {epoch, seq}`;

// KEYS[3] the stream; ARGV[2] after ('' reads no entries), [3] limit.
const READ = `${EPOCH}local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[2] == '' then return {epoch, last, {}} end
return {epoch, last, redis.call('XRANGE', KEYS[3], '(' .. ARGV[2] .. '-0', '+', 'COUNT', ARGV[3])}`;

type Args = (string | number | Buffer)[];

/** @returns a runner of a Lua script: EVALSHA, and EVAL when Redis does not have it (yet, or since a restart) */
function script(lua: string) {
  const sha = createHash("sha1").update(lua).digest("hex");
  return async (conn: Redis, keys: string[], args: Args): Promise<unknown> => {
    try {
      return await conn.callBuffer("EVALSHA", [sha, keys.length, ...keys, ...args]);
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith("NOSCRIPT"))) throw err;
      return conn.callBuffer("EVAL", [lua, keys.length, ...keys, ...args]);
    }
  };
}
const appendScript = script(APPEND);
const readScript = script(READ);

/**
 * Every connection made here fails its commands at once while Redis is down, and is re-subscribed by us.
 * disconnect() ends the socket and destroys it after `disconnectTimeout`; when the socket had already
 * closed (Redis was down) that timer alone would keep the process alive for ioredis's default 2 s.
 */
const OWN = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResubscribe: false,
  lazyConnect: false,
  disconnectTimeout: 100,
} as const;

/** Handles a connection's errors: one log line per outage, and no "unhandled error event" from ioredis. */
function quiet(conn: Redis, role: string, log: ((msg: string) => void) | undefined): Redis {
  let told = false;
  conn.on("error", (err: Error) => {
    if (!told) log?.(`chatter/redis: the ${role} connection failed: ${err.message}`);
    told = true;
  });
  conn.on("ready", () => {
    told = false;
  });
  return conn;
}

/**
 * Commands sent before a connection is first up would fail for nothing, so they wait for its first attempt.
 * @returns a promise that resolves when the connection is up or its first attempt failed
 */
function firstAttempt(conn: Redis): Promise<void> {
  if (conn.status !== "connecting" && conn.status !== "connect") return Promise.resolve();
  return new Promise((resolve) => {
    for (const event of ["ready", "close", "end"]) conn.once(event, () => resolve());
  });
}

/** @returns the entries of an XRANGE reply (ids `<seq>-0`, one field) */
function entries(reply: [Buffer, Buffer[]][]): LogEntry[] {
  return reply.map(([id, fields]) => ({ seq: Number.parseInt(id.toString(), 10), entry: fields[1] as Buffer }));
}

/**
 * Creates a Redis cluster backend, to pass as `createServer({ cluster })`.
 * @param options - `url` or `client`, and optional `prefix`, heartbeat timing, log size and a logger
 * @returns the backend; `ready` resolves once it listens (broadcasts from others reach it from then on)
 */
export function redisCluster(options: RedisClusterOptions): ClusterBackend & { stats: ClusterStats; ready: Promise<void> } {
  const { prefix = "chatter", maxLogEntries = 10_000, log } = options;
  // A client of the user's keeps its own options and error handling.
  const commands = options.client ?? quiet(new Redis(options.url ?? "redis://127.0.0.1:6379", OWN), "command", log);
  const commandsUp = firstAttempt(commands);
  const subscriber = quiet(commands.duplicate(OWN), "subscriber", log);
  const made = options.client ? [subscriber] : [commands, subscriber];
  let reader: { conn: Redis; up: Promise<void> } | undefined;
  let closed = false;

  const key = (name: string) => `${prefix}:${name}`;
  const logKeys = [key("log:epoch"), key("log:seq"), key("log")];
  const presenceKey = (id: string) => key(`presence:${id}`);
  const instances = key("instances");

  async function readLog(after: number | null, limit: number): Promise<LogRead> {
    await commandsUp;
    const args = [randomUUID(), after ?? "", limit];
    const [epoch, last, found] = (await readScript(commands, logKeys, args)) as [Buffer, number, [Buffer, Buffer[]][]];
    return { epoch: epoch.toString(), last, entries: entries(found) };
  }

  async function waitForEntries(after: number, limit: number, waitMs: number): Promise<boolean> {
    if (closed) throw new Error("chatter/redis: closed");
    if (!reader) {
      const conn = quiet(commands.duplicate(OWN), "reader", log);
      made.push(conn);
      reader = { conn, up: firstAttempt(conn) };
    }
    await reader.up;
    return (await reader.conn.xreadBuffer("COUNT", limit, "BLOCK", waitMs, "STREAMS", logKeys[2] as string, `${after}-0`)) !== null;
  }

  const subscribing = listen(subscriber, prefix, () => closed);
  return {
    stats: emptyStats(),
    ready: subscribing.ready,
    heartbeatMs: options.heartbeatMs,
    presenceTtlMs: options.presenceTtlMs,
    async publish(channel, message) {
      await commandsUp;
      return commands.publish(key(channel), Buffer.from(message));
    },
    subscribe: subscribing.subscribe,
    async append(origin, counter, entry, ttlMs) {
      await commandsUp;
      const keys = [...logKeys, key(`log:origin:${origin}`)];
      const reply = await appendScript(commands, keys, [randomUUID(), counter, Buffer.from(entry), ttlMs, maxLogEntries]);
      if (!Array.isArray(reply)) return null; // "duplicate": appended before, and the reply was lost
      return { epoch: String(reply[0]), seq: Number(reply[1]) };
    },
    async read(after, limit, waitMs) {
      const now = await readLog(after, limit);
      if (after === null || waitMs <= 0 || now.entries.length > 0) return now;
      // The wait only wakes us: the entries, the epoch and `last` come from one script, so they agree.
      return (await waitForEntries(after, limit, waitMs)) ? readLog(after, limit) : now;
    },
    async put(name, value, ttlMs) {
      await commandsUp;
      await commands.set(key(`kv:${name}`), Buffer.from(value), "PX", ttlMs);
    },
    async get(name) {
      await commandsUp;
      return (await commands.getBuffer(key(`kv:${name}`))) ?? undefined;
    },
    async touch(names, ttlMs) {
      await commandsUp;
      const pipeline = commands.pipeline();
      for (const name of names) pipeline.pexpire(key(`kv:${name}`), ttlMs);
      for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err;
    },
    async delete(names) {
      await commandsUp;
      if (names.length) await commands.del(...names.map((name) => key(`kv:${name}`)));
    },
    async putPresence(id, value, ttlMs) {
      await commandsUp;
      await commands.multi().set(presenceKey(id), Buffer.from(value), "PX", ttlMs).sadd(instances, id).exec();
    },
    async readPresence() {
      await commandsUp;
      const ids = await commands.smembers(instances);
      const values = ids.length ? await commands.mgetBuffer(...ids.map(presenceKey)) : [];
      return new Map(ids.map((id, i) => [id, values[i] ?? undefined]));
    },
    async forgetPresence(ids) {
      await commandsUp;
      if (ids.length) await commands.multi().del(ids.map(presenceKey)).srem(instances, ids).exec();
    },
    async close() {
      closed = true;
      subscribing.close();
      // disconnect() does not wait for Redis, and rejects what is pending (a waiting read among them).
      for (const conn of made) conn.disconnect();
    },
  };
}

/**
 * The subscriber's side of the bus. ioredis's own re-subscribing is off: we subscribe again at each 'ready',
 * so we know when listening resumed, and report each outage once, at the first 'close' after listening.
 */
function listen(subscriber: Redis, prefix: string, isClosed: () => boolean) {
  let ready: () => void = () => {};
  let failed: (err: Error) => void = () => {};
  const listening = new Promise<void>((resolve, reject) => {
    ready = resolve;
    failed = reject;
  });
  listening.catch(() => {}); // the promise `subscribe` returns carries the failure
  let names: string[] = [];
  let armed = false;
  let interrupted = () => {};
  const resume = () => {
    subscriber.subscribe(...names).then(
      () => {
        armed = true;
        ready();
      },
      () => {}, // it dropped again: the next 'ready' tries again
    );
  };
  subscriber.on("ready", () => {
    if (names.length) resume();
  });
  subscriber.on("close", () => {
    if (!armed || isClosed()) return;
    armed = false;
    interrupted();
  });
  return {
    ready: listening,
    async subscribe(channels: string[], listener: (channel: string, message: Uint8Array) => void, onInterrupted: () => void) {
      names = channels.map((c) => `${prefix}:${c}`);
      interrupted = onInterrupted;
      subscriber.on("messageBuffer", (from: Buffer, message: Buffer) => listener(from.toString().slice(prefix.length + 1), message));
      if (subscriber.status === "ready") resume();
      await listening;
    },
    close: () => failed(new Error("chatter/redis: closed before it listened")),
  };
}
