/**
 * A client session's public face: what a server handler gets as its second
 * argument, and what `find`, `filter` and `onOpen` hand out. Its state lives
 * in the core's `Session` (session.ts), out of reach.
 */
import type { CallOptions, ChatterStream, StreamOptions } from "../engine/types.ts";
import type { CallArgs, InputArgs, ItemOf, Proc, ResultOf, StreamArgs } from "../proc.ts";
import { broadcastFrom } from "./broadcast.ts";
import type { Session } from "./session.ts";

/** Options of `connection.broadcast`. */
export interface ConnectionBroadcastOptions<TData> {
  /** Deliver to this connection too, if it is subscribed. Defaults to `false`. */
  includeSelf?: boolean;
  /** Further connections to leave out. */
  exclude?: Iterable<ServerConnection<TData>>;
  /**
   * For what is stale a moment later (typing indicators): not kept for replay after a drop, and skipped for
   * sockets that are behind (anything waiting in their send buffer) or away. Defaults to `false`.
   */
  volatile?: boolean;
}

/** @internal a connection's session, for the core. */
export let sessionOf: (connection: ServerConnection<unknown>) => Session;

/** @internal whether a value is a connection (one made by a server core). */
export let isConnection: (value: unknown) => value is ServerConnection<unknown>;

/** @internal the sessions of some connections, for a broadcast's exclusions. */
export function sessionsOf(connections: Iterable<ServerConnection<unknown>> | undefined): Set<Session> {
  const out = new Set<Session>();
  for (const c of connections ?? []) out.add(sessionOf(c));
  return out;
}

/**
 * One client session, as the server sees it. It outlives a dropped socket:
 * when the client resumes within the resume window, the same object carries
 * on with its `data`, subscriptions and calls in flight. It is the second
 * argument of every server handler.
 */
export class ServerConnection<TData = unknown> {
  static {
    sessionOf = (connection) => connection.#session;
    isConnection = (value): value is ServerConnection<unknown> => typeof value === "object" && value !== null && #session in value;
  }
  readonly #session: Session;

  /** @internal made by the server core when a HELLO starts a new session. */
  constructor(session: Session) {
    this.#session = session;
  }

  /** What `getConnectionData` returned when this session began. */
  get data(): TData {
    return this.#session.data as TData;
  }

  /** The client's persistent id. */
  get clientId(): string {
    return this.#session.clientId;
  }

  /** The session's id. */
  get sessionId(): string {
    return this.#session.sessionId;
  }

  /** Whether a socket serves this session now (false while it waits for the client to resume). */
  get isConnected(): boolean {
    return this.#session.state !== null;
  }

  /**
   * Calls a procedure on this client. While the client is away (and may
   * resume) the call waits, and goes out when it is back.
   * @param proc - the procedure, made with `createProc`
   * @param args - its input, checked against `takes` before it is sent, then `{ timeout, signal }`
   * @returns the client handler's result, checked against `returns`
   */
  call<P extends Proc>(proc: P, ...args: CallArgs<P, CallOptions>): Promise<ResultOf<P>> {
    return this.#session.peer.call(proc, args[0], args[1] as CallOptions | undefined) as Promise<ResultOf<P>>;
  }

  /**
   * Reads a stream from this client: `for await (const item of connection.stream(proc, input)) { ... }`. The
   * client's handler is pulled only as fast as the loop takes items, and the stream survives a dropped
   * connection within the resume window. Leaving the loop stops the client's handler.
   * @param proc - a procedure with `yields`, made with `createProc`
   * @param args - its input (checked against `takes` before sending), then `{ timeout, signal, window }`
   * @returns an async iterable of the items, each checked against `yields`
   */
  stream<P extends Proc>(proc: P, ...args: StreamArgs<P, StreamOptions>): ChatterStream<ItemOf<P>> {
    return this.#session.peer.stream(proc, args[0], args[1] as StreamOptions | undefined) as ChatterStream<ItemOf<P>>;
  }

  /**
   * Calls a procedure on every connection subscribed to the topics, except
   * this one unless `includeSelf` is set. Each subscriber gets it once.
   * @param topics - a topic or an iterable of topics
   * @param proc - the procedure to call
   * @param args - its input (checked against `takes` first), then `{ includeSelf, exclude }`
   * @returns a promise that resolves once the broadcast is handed to the subscribers (with a cluster: once the
   *   cluster's log has it), or rejects with
   *   `VALIDATION` (then nothing is sent); a rejection nobody takes at once goes to `onError`
   */
  broadcast<P extends Proc>(
    topics: string | Iterable<string>,
    proc: P,
    ...args: [...InputArgs<P>, options?: ConnectionBroadcastOptions<TData>]
  ): Promise<void> {
    const options = args[1] as ConnectionBroadcastOptions<TData> | undefined;
    const exclude = sessionsOf(options?.exclude as Iterable<ServerConnection<unknown>> | undefined);
    if (!options?.includeSelf) exclude.add(this.#session);
    return broadcastFrom(this.#session.host, topics, proc, args[0], exclude, options?.volatile === true);
  }

  /** Subscribes this connection to a topic, so it gets the topic's broadcasts. */
  subscribe(topic: string): void {
    this.#session.host.topics.subscribe(this.#session, topic);
  }

  /** Unsubscribes this connection from a topic. */
  unsubscribe(topic: string): void {
    this.#session.host.topics.unsubscribe(this.#session, topic);
  }

  /** @returns whether this connection is subscribed to the topic */
  isSubscribed(topic: string): boolean {
    return this.#session.isSubscribed(topic);
  }

  /** Ends the session and closes its socket. The client reconnects with a fresh session. */
  close(code = 1000, reason = "closed by the server"): void {
    this.#session.host.endSession(this.#session, code, reason);
  }
}

/**
 * What the core makes: a `ServerConnection` whose own prototype defines nothing. JSC sizes an object's inline
 * storage by its class's accessors too (`data`, `clientId`...), so one made straight from `ServerConnection`
 * is a 64-byte cell for its one field; through this subclass it is 32 (thousands of idle sessions add up).
 */
class Face extends ServerConnection {}

/** @internal @returns a new session's public face */
export function faceOf(session: Session): ServerConnection {
  return new Face(session);
}
