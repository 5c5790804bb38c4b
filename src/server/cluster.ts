/**
 * The contract of a cluster backend (such as chatter/redis): a message bus and
 * a small presence store, nothing more. Routing calls, deciding NOT_FOUND,
 * deadlines, encoding and summing presence live in the cluster core
 * (cluster-core.ts), written once, so a second backend is a page.
 */

/** Counters of what a cluster did. The cluster core keeps them; a backend only offers the object to its users. */
export interface ClusterStats {
  /** Messages sent: broadcasts, calls and their answers. */
  published: number;
  /** Messages received and decoded. */
  received: number;
  /** Messages the backend could not send (broadcasts and answers lost to an outage). */
  lost: number;
}

/**
 * Gets every message on the channels an instance listens on.
 * @param channel - the channel's name, as given to `subscribe`
 * @param message - its bytes; valid only during the call
 */
export type ClusterListener = (channel: string, message: Uint8Array) => void;

/**
 * A cluster backend: what several server instances share. Channel names and
 * instance ids come from the core; a backend may put them under a namespace
 * of its own (chatter/redis: its `prefix`), so clusters sharing one store stay apart.
 */
export interface ClusterBackend {
  /** Where the core keeps its counters, for the backend's users to read (optional). */
  readonly stats?: ClusterStats;
  /** Milliseconds between refreshes of this instance's presence. The core defaults it to 2 000. */
  readonly heartbeatMs?: number;
  /** Milliseconds a presence entry lives without a refresh. The core defaults it to 3 heartbeats. */
  readonly presenceTtlMs?: number;
  /**
   * Sends a message to every instance listening on the channel, this one included. Never queue it
   * for later: a message late by minutes is worse than one reported lost.
   * @param channel - where to send it
   * @param message - its bytes; valid only during the call, so copy them to keep them
   * @returns how many listeners got it; rejects if it could not be sent
   */
  publish(channel: string, message: Uint8Array): Promise<number>;
  /**
   * Listens on channels, for as long as the backend is open (again after an outage). Called once.
   * @param channels - the channels to listen on
   * @param listener - gets every message on them
   * @returns a promise that resolves once the instance listens
   */
  subscribe(channels: string[], listener: ClusterListener): Promise<void>;
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
  /** Closes every connection the backend opened, so the process can exit. */
  close(): Promise<void>;
}

// Between the server core and the cluster core; not for backends.

/** A broadcast as it travels between instances. Exclusions are by session id, which is unique cluster-wide. */
export interface ClusterBroadcast {
  /** The instance that sent it; it has already delivered it to its own connections. */
  origin: string;
  topics: string[];
  name: string;
  input: unknown;
  excludeSessions: string[];
  /** Not logged for replay, and skipped for sockets that are behind (`broadcast(..., { volatile: true })`). */
  volatile?: boolean;
}

/** What the cluster core asks of the local server (`clusterNode` builds it). */
export interface ClusterNode {
  /** This instance's id, unique in the cluster. */
  readonly instanceId: string;
  /** Delivers a broadcast from another instance to the local subscribers. */
  deliver(broadcast: ClusterBroadcast): void;
  /**
   * Calls a procedure on a client connected here; `timeout` 0 waits for ever.
   * @returns the answer, or `undefined` if the client is not connected to this instance
   */
  callLocal(
    clientId: string,
    name: string,
    input: unknown,
    options: { timeout: number; signal: AbortSignal },
  ): Promise<unknown> | undefined;
  /** Subscribers per topic on this instance, for presence. */
  topicCounts(): Record<string, number>;
  /** Reports trouble (lost messages, an unreachable backend). */
  report(error: unknown): void;
  log: ((msg: string) => void) | undefined;
}
