/**
 * The contract of a cluster backend (such as chatter/redis): a message bus, an
 * ordered log, a small key-value store and a presence store, nothing more.
 * Routing calls and sockets, deciding NOT_FOUND, deadlines, the order of
 * broadcasts, replays, epochs and every piece of exactly-once bookkeeping live
 * in the cluster core (cluster-core.ts and the files beside it), written once,
 * so a second backend (NATS JetStream, Valkey) is a page.
 */

/** Counters of what a cluster did. The cluster core keeps them; a backend only offers the object to its users. */
export interface ClusterStats {
  /** Messages sent on the bus and broadcasts appended to the log. */
  published: number;
  /** Messages and log entries received and decoded. */
  received: number;
  /** Messages the backend could not carry: broadcasts dropped because the queue for an outage was full, answers lost. */
  lost: number;
  /** Broadcasts accepted and waiting for the backend (an outage), right now. */
  queued: number;
  /** Sessions reset because broadcasts they may have needed were lost (the store lost its log, or trimmed it past a reader). */
  resets: number;
  /** Sessions that moved here from another instance, their client having reconnected here. */
  moved: number;
  /** Sockets relayed from another instance to a session here (something was in flight, so it could not move). */
  relayed: number;
  /** Sessions taken over here after their instance died. */
  takenOver: number;
}

/** @returns counters at zero */
export function emptyStats(): ClusterStats {
  return { published: 0, received: 0, lost: 0, queued: 0, resets: 0, moved: 0, relayed: 0, takenOver: 0 };
}

/**
 * Gets every message on the channels an instance listens on.
 * @param channel - the channel's name, as given to `subscribe`
 * @param message - its bytes; valid only during the call
 */
export type ClusterListener = (channel: string, message: Uint8Array) => void;

/** Where an entry sits in the log. */
export interface LogPosition {
  /**
   * The log's epoch: made when the log is first used, and made again only when the store lost the log (a
   * restart without persistence). Sequence numbers restart in a new epoch, so the core compares epochs first.
   */
  epoch: string;
  /** The entry's number: 1 for the first entry of an epoch, then each one after the last, with no gaps. */
  seq: number;
}

/** One entry read back from the log. */
export interface LogEntry {
  seq: number;
  /** Its bytes, as appended; the core may keep them. */
  entry: Uint8Array;
}

/** What a read of the log found. */
export interface LogRead {
  /** The log's epoch at the read (made if the log had none). */
  epoch: string;
  /** The newest entry's number in that epoch when read, 0 if none. */
  last: number;
  /**
   * Entries after the asked-for number, oldest first. Entries the store trimmed are simply absent: when the
   * first one is numbered past `after + 1`, the core knows some were lost.
   */
  entries: LogEntry[];
}

/**
 * A cluster backend: what several server instances share. Channel names, keys and instance ids come from
 * the core; a backend puts them under a namespace of its own (chatter/redis: its `prefix`), so clusters
 * sharing one store stay apart. Every method may reject while the store is unreachable; the core retries
 * what must not be lost.
 */
export interface ClusterBackend {
  /** Where the core keeps its counters, for the backend's users to read (optional). */
  readonly stats?: ClusterStats;
  /** Milliseconds between refreshes of this instance's presence. The core defaults it to 2 000. */
  readonly heartbeatMs?: number;
  /** Milliseconds a presence entry lives without a refresh. The core defaults it to 3 heartbeats. */
  readonly presenceTtlMs?: number;

  // The bus: live messages between instances, lost in an outage (the core then closes what relied on them).

  /**
   * Sends a message to every instance listening on the channel, this one included. Never queue it for
   * later: the core treats a failed send as lost and recovers on its own.
   * @param channel - where to send it
   * @param message - its bytes; valid only during the call, so copy them to keep them
   * @returns how many listeners got it; rejects if it could not be sent
   */
  publish(channel: string, message: Uint8Array): Promise<number>;
  /**
   * Listens on channels for as long as the backend is open, again after an outage. Called once.
   * @param channels - the channels to listen on
   * @param listener - gets every message on them, in the order each sender sent them
   * @param interrupted - called (once per outage) when messages may have been missed: the connection that
   *   listens dropped. Called again at the next outage, not when listening resumes.
   * @returns a promise that resolves once the instance listens
   */
  subscribe(channels: string[], listener: ClusterListener, interrupted: () => void): Promise<void>;

  // The log: every broadcast that must not be lost, in one order for the whole cluster.

  /**
   * Appends an entry, at most once per `(origin, counter)`: an instance numbers its appends 1, 2, 3... and
   * retries after a failure, so the store must keep, per origin, the last counter it appended (for at least
   * `ttlMs`) and apply only `counter === last + 1` (or any counter when it keeps none).
   * @param origin - the appending instance's id
   * @param counter - this append's number among the origin's
   * @param entry - its bytes; valid only during the call
   * @param ttlMs - how long the log must keep entries for late readers; the store may trim sooner past its own size bound
   * @returns the entry's position; `null` if this counter was appended already (a retry after a lost
   *   reply); rejects with an error whose message starts with `"OUT_OF_ORDER"` when `counter > last + 1`
   */
  append(origin: string, counter: number, entry: Uint8Array, ttlMs: number): Promise<LogPosition | null>;
  /**
   * Reads entries after `after`, waiting up to `waitMs` for one when there are none yet.
   * @param after - the newest entry the reader has, 0 for the start of the epoch; `null` reads no entries,
   *   only the epoch and `last` (where a new reader starts)
   * @param limit - entries at most
   * @param waitMs - 0 returns at once. A waiting read must not hold up the backend's other methods (use a
   *   connection of its own), and `close` ends it (it rejects).
   */
  read(after: number | null, limit: number, waitMs: number): Promise<LogRead>;

  // A small key-value store: session records.

  /** Stores a value under a key, for `ttlMs`. */
  put(key: string, value: Uint8Array, ttlMs: number): Promise<void>;
  /** @returns the value stored under the key, `undefined` if none or expired */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Sets the expiry of keys that exist to `ttlMs` from now; missing keys are skipped. */
  touch(keys: string[], ttlMs: number): Promise<void>;
  /** Forgets keys. */
  delete(keys: string[]): Promise<void>;

  // Presence: each instance's subscriber counts, refreshed by a heartbeat.

  /**
   * Stores an instance's presence, replacing what it stored before.
   * @param instanceId - the instance
   * @param value - its bytes; valid only during the call
   * @param ttlMs - how long the entry lives unless stored again
   */
  putPresence(instanceId: string, value: Uint8Array, ttlMs: number): Promise<void>;
  /** @returns every instance's presence that the store knows of, `undefined` where the entry has expired */
  readPresence(): Promise<Map<string, Uint8Array | undefined>>;
  /** Forgets instances: dead ones, and this one as it leaves. */
  forgetPresence(instanceIds: string[]): Promise<void>;

  /** Closes every connection the backend opened, so the process can exit. Ends a waiting `read`. */
  close(): Promise<void>;
}

// Between the server core and the cluster core; not for backends.

/** A relay's message on the bus (relay.ts says what each is for). */
export type RelayMessage =
  | { k: "open"; r: number; from: string; hello: Uint8Array; address: string | null }
  | { k: "up"; r: number; from: string; m: Uint8Array }
  | { k: "closed"; r: number; from: string; code: number; reason: string }
  | { k: "down"; r: number; m: Uint8Array }
  | { k: "close"; r: number; code: number; reason: string }
  | { k: "gone"; r: number }
  | { k: "moved"; r: number; session: Uint8Array }
  | { k: "redirect"; r: number; to: string };

/** A broadcast as it travels between instances. Exclusions are by session id, which is unique cluster-wide. */
export interface ClusterBroadcast {
  /** The instance that sent it. */
  origin: string;
  topics: string[];
  name: string;
  input: unknown;
  excludeSessions: string[];
  /** Not logged for replay, and skipped for sockets that are behind (`broadcast(..., { volatile: true })`). */
  volatile?: boolean;
}

/** A subscribed connection, anywhere in the cluster (`server.members(topic)`). */
export interface ClusterMember<Data = unknown> {
  clientId: string;
  sessionId: string;
  /** What `getConnectionData` returned for it, as it crosses the cluster (MessagePack: plain data survives). */
  data: Data;
  /** The id of the instance its session lives on. */
  instance: string;
}

/** What the cluster core asks of the local server (`clusterNode` builds it). */
export interface ClusterNode {
  /** This instance's id, unique in the cluster. */
  readonly instanceId: string;
  /** Delivers a broadcast to the local subscribers: `seq` is its number in the cluster log, 0 for a volatile one. */
  deliver(broadcast: ClusterBroadcast, seq: number): void;
  /**
   * Calls a procedure on a client whose session lives here; `timeout` 0 waits for ever.
   * @returns the answer, or `undefined` if the client's session is not here
   */
  callLocal(
    clientId: string,
    name: string,
    input: unknown,
    options: { timeout: number; signal: AbortSignal },
  ): Promise<unknown> | undefined;
  /** Subscribers per topic on this instance, for presence. */
  topicCounts(): Record<string, number>;
  /** The sessions here subscribed to a topic. */
  members(topic: string): ClusterMember[];
  /** A relay message for this instance (relay.ts). */
  relay(message: RelayMessage): void;
  /** The bus connection dropped: messages may have been lost. */
  interrupted(): void;
  /** Reports trouble (lost messages, an unreachable backend). */
  report(error: unknown): void;
  log: ((msg: string) => void) | undefined;
}
