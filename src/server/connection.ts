import { type CallOptions, Peer } from "../engine/peer.ts";
import type { InputArgs, Proc, ResultOf } from "../proc.ts";
import type { ServerCore } from "./core.ts";
import type { ServerSocket } from "./socket.ts";

/** Options of `connection.broadcast`. */
export interface ConnectionBroadcastOptions<TData> {
  /** Deliver to this connection too, if it is subscribed. Defaults to `false`. */
  includeSelf?: boolean;
  /** Further connections to leave out. */
  exclude?: Iterable<ServerConnection<TData>>;
}

/**
 * One client's open socket, as the server sees it. It is the second
 * argument of every server handler.
 */
export class ServerConnection<TData = unknown> {
  /** What `getConnectionData` returned for this client. */
  readonly data: TData;
  /** The client's persistent id. */
  readonly clientId: string;
  /** The id of this client session, set by the handshake. */
  sessionId = "";
  /** @internal the topics this connection is subscribed to. */
  readonly topics = new Set<string>();
  /** @internal */
  readonly peer: Peer;
  /** @internal */
  readonly socket: ServerSocket;
  /** @internal set once the HELLO handshake is done. */
  ready = false;
  /** @internal pending handshake timer. */
  helloTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly core: ServerCore<TData>;

  /** @internal made by the server core when a socket opens. */
  constructor(core: ServerCore<TData>, socket: ServerSocket, clientId: string, data: TData) {
    this.core = core;
    this.socket = socket;
    this.clientId = clientId;
    this.data = data;
    this.peer = new Peer({
      handlers: core.handlers,
      owner: this,
      side: "server",
      log: core.log,
      exposeStack: core.exposeStack,
      onControl: (frame) => core.protocolError(this, `unexpected frame type ${frame[0]} after the handshake`),
    });
  }

  /**
   * Calls a procedure on this client.
   * @param proc - the procedure, made with `createProc`
   * @param args - its input, checked against `takes` before it is sent
   * @returns the client handler's result, checked against `returns`
   */
  call<P extends Proc>(proc: P, ...args: [...InputArgs<P>, options?: CallOptions]): Promise<ResultOf<P>> {
    return this.peer.call(proc, args[0], args[1] as CallOptions | undefined) as Promise<ResultOf<P>>;
  }

  /**
   * Calls a procedure on every connection subscribed to the topics, except
   * this one unless `includeSelf` is set. Each subscriber gets it once.
   * @param topics - a topic or an iterable of topics
   * @param proc - the procedure to call
   * @param input - its input, checked against `takes` before it is sent
   * @param options - `includeSelf`, `exclude`
   */
  broadcast<P extends Proc>(
    topics: string | Iterable<string>,
    proc: P,
    ...args: [...InputArgs<P>, options?: ConnectionBroadcastOptions<TData>]
  ): void {
    const options = args[1] as ConnectionBroadcastOptions<TData> | undefined;
    const exclude = new Set(options?.exclude ?? []);
    if (!options?.includeSelf) exclude.add(this);
    this.core.broadcast(topics, proc, args[0], exclude);
  }

  /** Subscribes this connection to a topic, so it gets the topic's broadcasts. */
  subscribe(topic: string): void {
    this.core.subscribe(this, topic);
  }

  /** Unsubscribes this connection from a topic. */
  unsubscribe(topic: string): void {
    this.core.unsubscribe(this, topic);
  }

  /** @returns whether this connection is subscribed to the topic */
  isSubscribed(topic: string): boolean {
    return this.topics.has(topic);
  }

  /** Closes this connection; the client will reconnect unless it was closed for good. */
  close(code = 1000, reason = "closed by the server"): void {
    this.socket.close(code, reason);
  }
}
