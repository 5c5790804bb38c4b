/** The options of `createServer`, with their defaults: one place to read every limit. */
import type { CallContext } from "../engine/context.ts";
import type { ChatterError } from "../errors.ts";
import type { MaybePromise } from "../proc.ts";
import { MAX_FRAMES_PER_MESSAGE } from "../wire/frames.ts";
import type { ClusterBackend } from "./cluster.ts";
import type { ServerConnection } from "./connection.ts";
import type { RateLimitOptions } from "./rate-limit.ts";
import type { ConnectionRequest } from "./upgrade.ts";

/** Options of `createServer`. */
export interface ServerOptions<TData = unknown> {
  /**
   * Runs during the upgrade, before the socket opens. Its result becomes
   * `connection.data`. Throw to refuse with 401, or return or throw a
   * `Response` to refuse with that response.
   */
  getConnectionData?: (info: ConnectionRequest) => TData | Promise<TData>;
  /** Runs once a new session's handshake is done, before its calls are handled. Not run again on resume. */
  onOpen?: (connection: ServerConnection<NoInfer<TData>>) => unknown;
  /**
   * Runs when a session's socket drops and the session waits for the client to resume (not when it ends:
   * see `onClose`). Presence can show "away" at once instead of after the resume window.
   */
  onDisconnect?: (connection: ServerConnection<NoInfer<TData>>, code: number, reason: string) => unknown;
  /** Runs when a session that `onDisconnect` reported resumes on a new socket. */
  onResume?: (connection: ServerConnection<NoInfer<TData>>) => unknown;
  /** Runs when a session ends: closed for good, or not resumed within the window. */
  onClose?: (connection: ServerConnection<NoInfer<TData>>, code: number, reason: string) => unknown;
  /** Gets errors nobody awaits: failing hooks and broadcast handlers. Defaults to `console.error`. */
  onError?: (error: unknown, connection?: ServerConnection<NoInfer<TData>>) => void;
  /** Log what happens and why. */
  verbose?: boolean;
  /** Send handler stacks to callers with `HANDLER_ERROR`. Off by default: stacks leak internals. */
  exposeStack?: boolean;
  /** Largest frame accepted, in bytes, checked before decoding. Defaults to 1 MiB. */
  maxMessageBytes?: number;
  /** Milliseconds a new socket has to send its HELLO. Defaults to 10 000. */
  handshakeTimeout?: number;
  /** Milliseconds a session is kept after its socket drops, for the client to resume. Defaults to 30 000; 0 turns resume off. */
  resumeWindow?: number;
  /** Bounds on the log of recent broadcasts that resuming sessions catch up from (server-wide). */
  replay?: { maxMessages?: number; maxBytes?: number };
  /** Topics one connection may be in at once; `subscribe` past it throws `LIMIT`. Defaults to 1000. */
  maxTopicsPerConnection?: number;
  /** Characters a topic name may have; `subscribe` to a longer one throws `LIMIT`. Defaults to 256. */
  maxTopicLength?: number;
  /** Topics with subscribers at once, server-wide; `subscribe` to one more throws `LIMIT`. Defaults to 100 000. */
  maxTopics?: number;
  /** Calls from one connection whose handlers may run at once; more are refused with `LIMIT`. Defaults to 1024. */
  maxConcurrentCalls?: number;
  /** The same across every session of one client id (a client that reconnected fresh). Defaults to `maxConcurrentCalls`. */
  maxConcurrentCallsPerClient?: number;
  /**
   * The same across every session from one address (per /64 for IPv6): client ids are free to make, addresses
   * are not. Defaults to 4 × `maxConcurrentCalls`.
   */
  maxConcurrentCallsPerAddress?: number;
  /** Handlers running at once on the whole server; more calls are refused with `LIMIT`. Defaults to 65 536. */
  maxRunningCalls?: number;
  /** Open sockets plus sessions waiting for a resume, server-wide; past it upgrades get 503. Defaults to 50 000. */
  maxConnections?: number;
  /** The same per client address (per /64 for IPv6); past it upgrades get 429. Defaults to 1000. */
  maxConnectionsPerAddress?: number;
  /** Frames one socket may send per second; past it the socket is closed with 4008. Defaults to 50 000; 0 turns it off. */
  maxFramesPerSecond?: number;
  /** Frames one message may hold (a batch); past it the socket is closed with 1009 before the rest is decoded. Defaults to 1000. */
  maxFramesPerMessage?: number;
  /**
   * Bytes of answers kept for repeats across all sessions (parked ones too). Past it the oldest kept answers
   * anywhere are dropped; a repeat of one is answered `LIMIT`. Defaults to 64 MiB.
   */
  maxKeptBytes?: number;
  /**
   * Bytes of stream items held for readers that have not acknowledged them (kept so a stream survives a drop),
   * across every stream of the server; past it, writers wait for their readers. Each stream also holds at most
   * 1 MiB and 1024 items. Defaults to 64 MiB.
   */
  maxStreamBytes?: number;
  /** Seconds a socket may stay silent (clients ping every 30 s) before it is closed with 4002. Defaults to 120. */
  idleTimeout?: number;
  /** Bytes that may wait to be written to one socket; past it the socket is closed with 4003. Defaults to 4 MiB. */
  maxBufferedBytes?: number;
  /**
   * Upgrades per client address (per /64 for IPv6): a burst of `max`, earned back at `max` per `windowMs`;
   * past it, 429 with Retry-After. Defaults to 200 per 10 s; `false` turns it off. The seed's spelling,
   * `{ maxConnectionsPerMinute, trustProxy }`, works too (see {@link SeedRateLimitOptions}).
   */
  rateLimit?: RateLimitOptions | SeedRateLimitOptions | false;
  /**
   * Take client addresses from X-Forwarded-For, as appended by your own proxies: `true` trusts one
   * hop (the rightmost entry), a number trusts that many. Only behind proxies you run.
   */
  trustProxy?: boolean | number;
  /** Origins allowed to connect (the browser's Origin header); requests without one pass. */
  allowedOrigins?: string[];
  /**
   * Reshapes every error before it leaves the server as an answer: handler and middleware errors, validation
   * of arriving input, refusals such as `LIMIT` and `NOT_IMPLEMENTED`. Return a `ChatterError`; e.g. pass your
   * own ChatterErrors on and hide the rest. One that throws or returns something else goes to `onError`, and
   * the caller gets `HANDLER_ERROR` with no detail.
   */
  formatError?: (error: unknown, ctx: CallContext) => ChatterError;
  /** A cluster backend (e.g. `redisCluster` from chatter/redis) to act as one with other instances. */
  cluster?: ClusterBackend;
  /**
   * The key that signs client ids, so a client proves its id instead of
   * claiming it. Defaults to a random key per process; give every instance of
   * a cluster (and every restart, to keep ids across restarts) the same one.
   */
  secret?: string;
}

/** The rate limit as `@manyducks.co/chatter` 2.x spells it, accepted beside Chatter's own `{ max, windowMs }`. */
export interface SeedRateLimitOptions {
  /** Upgrades per client address per minute: Chatter's token bucket `{ max: n, windowMs: 60_000 }`. */
  maxConnectionsPerMinute?: number;
  /** The same as the top-level `trustProxy`. */
  trustProxy?: boolean | number;
}

/**
 * A handler on the server: gets the parsed input, the calling connection and the call's context, and returns
 * the procedure's result or a promise of it (anything, nothing included, when the procedure has no `returns`).
 */
export type ServerHandler<TData, TIn, TOut> = (input: TIn, connection: ServerConnection<TData>, ctx: CallContext) => MaybePromise<TOut>;

/**
 * Maps the seed's option spellings onto Chatter's, once, so the rest of the server reads one spelling:
 * `rateLimit: { maxConnectionsPerMinute, trustProxy }` becomes `rateLimit: { max, windowMs: 60_000 }` and `trustProxy`.
 * @returns the options with only Chatter's spellings; throws `TypeError` on a mix that cannot mean one thing
 */
export function withSeedSpellings<TData>(options: ServerOptions<TData>): ServerOptions<TData> {
  const limit = options.rateLimit;
  if (!limit || !("maxConnectionsPerMinute" in limit || "trustProxy" in limit)) return options;
  const fail = (why: string) => new TypeError(`[chatter] createServer: rateLimit ${why}`);
  if ("max" in limit || "windowMs" in limit) throw fail("takes { max, windowMs } or { maxConnectionsPerMinute }, not both");
  const perMinute = limit.maxConnectionsPerMinute;
  if (perMinute !== undefined && !(perMinute >= 1)) throw fail("maxConnectionsPerMinute must be a number >= 1");
  const proxy = limit.trustProxy ?? options.trustProxy;
  if (options.trustProxy !== undefined && proxy !== options.trustProxy) throw fail("trustProxy differs from the top-level trustProxy");
  return { ...options, rateLimit: rateLimitOf(limit) ?? undefined, trustProxy: proxy };
}

/** @returns Chatter's token bucket for either spelling (the default when unset), or null when turned off */
function rateLimitOf(limit: ServerOptions["rateLimit"]): RateLimitOptions | null {
  if (limit === false) return null;
  if (limit && "max" in limit) return limit;
  const perMinute = limit?.maxConnectionsPerMinute;
  return perMinute === undefined ? { max: 200, windowMs: 10_000 } : { max: perMinute, windowMs: 60_000 };
}

/** Every limit, resolved against its default. */
export function limitsOf<TData>(options: ServerOptions<TData>) {
  const maxConcurrentCalls = options.maxConcurrentCalls ?? 1024;
  return {
    maxMessageBytes: options.maxMessageBytes ?? 1024 * 1024,
    maxBufferedBytes: options.maxBufferedBytes ?? 4 * 1024 * 1024,
    maxConcurrentCalls,
    maxConcurrentCallsPerClient: options.maxConcurrentCallsPerClient ?? maxConcurrentCalls,
    maxRunningCalls: options.maxRunningCalls ?? 65_536,
    maxConnections: options.maxConnections ?? 50_000,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? 1000,
    maxFramesPerSecond: options.maxFramesPerSecond === 0 ? Number.POSITIVE_INFINITY : (options.maxFramesPerSecond ?? 50_000),
    maxFramesPerMessage: options.maxFramesPerMessage ?? MAX_FRAMES_PER_MESSAGE,
    maxKeptBytes: options.maxKeptBytes ?? 64 * 1024 * 1024,
    maxStreamBytes: options.maxStreamBytes ?? 64 * 1024 * 1024,
    idleTimeout: options.idleTimeout ?? 120,
    maxTopicsPerConnection: options.maxTopicsPerConnection ?? 1000,
    maxTopicLength: options.maxTopicLength ?? 256,
    maxTopics: options.maxTopics ?? 100_000,
    maxConcurrentCallsPerAddress: options.maxConcurrentCallsPerAddress ?? 4 * maxConcurrentCalls,
    rateLimit: rateLimitOf(options.rateLimit),
    replay: { maxMessages: options.replay?.maxMessages ?? 10_000, maxBytes: options.replay?.maxBytes ?? 8 * 1024 * 1024 },
  };
}
