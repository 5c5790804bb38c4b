/**
 * The public client: what an app calls (call, on, use, the on… callbacks, close) and reads (state, ids). Its
 * workings sit in #private fields, out of reach and out of the built .d.ts: the engine Peer that outlives
 * every socket, and the Connection (connection.ts) that opens, keeps and replaces those sockets. It sits at
 * the top of src/client: the modules below take what they need of it as small interfaces, never this class.
 */
import type { CallContext } from "../engine/context.ts";
import { addMiddleware, type Middleware } from "../engine/middleware.ts";
import { Peer } from "../engine/peer.ts";
import { preloadWriters } from "../engine/stream-load.ts";
import type { CallOptions, ChatterStream, HandlerEntry, StreamOptions } from "../engine/types.ts";
import type { ChatterError } from "../errors.ts";
import {
  addHandler,
  type CallArgs,
  type HandlerOutput,
  type ItemOf,
  type ParsedInputOf,
  type Proc,
  type ResultOf,
  type StreamArgs,
} from "../proc.ts";
import { Connection } from "./connection.ts";
import { exposeInternals } from "./internal.ts";
import { Listeners, listen } from "./listeners.ts";
import type { ClientOptions, StateListener, WebSocketConstructor } from "./options.ts";
import { ConnectionState } from "./state.ts";

export type { ClientOptions, StateInfo, WebSocketConstructor } from "./options.ts";

/** A handler on the client: gets the parsed input, the client and the call's context. */
export type ClientHandler<TIn, TOut> = (
  input: TIn,
  client: ChatterClient,
  ctx: CallContext,
) => TOut | undefined | Promise<TOut | undefined> | void | Promise<void>;

export class ChatterClient {
  readonly #handlers = new Map<string, HandlerEntry>();
  readonly #listeners: Listeners<ChatterClient>;
  readonly #peer: Peer;
  readonly #connection: Connection;

  constructor(options: ClientOptions) {
    const log = options.verbose ? (msg: string) => console.log(`[chatter] client: ${msg}`) : undefined;
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) {
      throw new TypeError('[chatter] no global WebSocket here; pass one, e.g. createClient({ url, WebSocket }) with WebSocket from "ws"');
    }
    this.#listeners = new Listeners<ChatterClient>(this, log);
    this.#peer = new Peer(
      {
        handlers: this.#handlers,
        side: "client",
        log,
        exposeStack: options.exposeStack ?? false,
        maxQueue: options.maxQueue ?? 1000,
        onControl: (frame) => this.#connection.onControl(frame),
      },
      this,
    );
    this.#connection = new Connection(options, WS, this.#peer, this.#listeners, log);
    exposeInternals(this, { peer: this.#peer, connection: this.#connection });
  }

  /**
   * This client's id, which `server.callClient` reaches. The server assigns it
   * on the first connection and the client proves it afterwards with
   * `clientKey`; in a browser both are kept in `localStorage`, so the id
   * survives reloads. Until the first handshake it is a local proposal.
   */
  get clientId(): string {
    return this.#connection.session.identity.clientId;
  }

  /**
   * The secret that proves `clientId` to the server, or null before the first
   * handshake. To keep the id across runs outside a browser, store both and
   * pass them to `createClient`. Never log or share it.
   */
  get clientKey(): string | null {
    return this.#connection.session.identity.clientKey;
  }

  /** The current connection state. */
  get state(): ConnectionState {
    return this.#connection.state;
  }

  /**
   * The id of this client's session with the server: made fresh by each
   * `createClient`, kept while the session resumes, and replaced when the
   * server starts a new session (see `onReset`).
   */
  get sessionId(): string {
    return this.#connection.session.id;
  }

  /** Whether the current connection resumed the previous session (`false` on a first or fresh session). */
  get resumed(): boolean {
    return this.#connection.session.resumed;
  }

  /** `true` when the handshake is done and calls flow. */
  get isConnected(): boolean {
    return this.#connection.state === ConnectionState.Connected;
  }

  /**
   * Registers a callback for state changes.
   * @returns a function that unregisters it
   */
  onStateChange(callback: StateListener): () => void {
    return listen(this.#listeners.state, callback);
  }

  /**
   * Registers a callback for when the server could not resume the session
   * (it restarted, or the client was away longer than its resume window) and
   * started a fresh one. Whatever the server held for this client is gone and
   * broadcasts may have been missed: fetch state again.
   * @returns a function that unregisters it
   */
  onReset(callback: () => unknown): () => void {
    return listen(this.#listeners.reset, callback);
  }

  /**
   * Registers a callback that sets up each fresh session: on the first connection and after every reset,
   * before any call queued meanwhile is sent. It may be async; the calls it makes go out first, and the
   * queued calls wait until every such callback has settled. A callback that throws goes to `onError`, and
   * the queue still goes out. Use it to re-join rooms or re-authenticate.
   * @returns a function that unregisters it
   */
  onSession(callback: (client: ChatterClient) => unknown): () => void {
    return listen(this.#listeners.session, callback);
  }

  /**
   * Registers a callback for connection-level failures, each a `ChatterError`: the server refused the
   * connection (`UNAUTHORIZED`, `FORBIDDEN`, `RATE_LIMITED` with `retryAfter` in ms, `UNAVAILABLE`, or the code
   * `getConnectionData` threw), speaks another protocol version (`PROTOCOL`), or `url()` failed.
   * @returns a function that unregisters it
   */
  onError(callback: (error: ChatterError) => unknown): () => void {
    return listen(this.#listeners.error, callback);
  }

  /**
   * Wraps every call from the server and every broadcast this client receives, in registration order, around
   * its handler: `(input, client, ctx, next) => result`, as `server.use`.
   * @returns a function that removes it
   */
  use(middleware: Middleware<ChatterClient>): () => void {
    return addMiddleware(this.#peer.opts, middleware);
  }

  /**
   * Implements a procedure the server can call on this client.
   * @param proc - the procedure, made with `createProc`
   * @param handler - gets the parsed input, the client and a context with an abort `signal`
   * @returns a function that removes the handler
   */
  on<P extends Proc>(proc: P, handler: ClientHandler<ParsedInputOf<P>, HandlerOutput<P>>): () => void {
    // A stream's writer code loads now, not when the server first reads the stream.
    if (proc.yields !== null) preloadWriters();
    return addHandler(this.#handlers, { proc, handler } as HandlerEntry, "client");
  }

  /**
   * Calls a procedure on the server. While disconnected the call waits in a
   * bounded queue, and goes out once the client reconnects.
   * @param proc - the procedure, made with `createProc`
   * @param args - its input (checked against `takes` before sending), then `{ timeout, signal }`
   * @returns the server's result, checked against `returns`
   */
  call<P extends Proc>(proc: P, ...args: CallArgs<P, CallOptions>): Promise<ResultOf<P>> {
    return this.#peer.call(proc, args[0], args[1] as CallOptions | undefined) as Promise<ResultOf<P>>;
  }

  /**
   * Reads a stream from the server: `for await (const item of client.stream(proc, input)) { ... }`. The server's
   * handler is pulled only as fast as the loop takes items, and the stream survives a dropped connection
   * within the resume window with no item lost, doubled or reordered. Leaving the loop stops the handler.
   * @param proc - a procedure with `yields`, made with `createProc`
   * @param args - its input (checked against `takes` before sending), then `{ timeout, signal, window }`
   * @returns an async iterable of the items, each checked against `yields`
   */
  stream<P extends Proc>(proc: P, ...args: StreamArgs<P, StreamOptions>): ChatterStream<ItemOf<P>> {
    return this.#peer.stream(proc, args[0], args[1] as StreamOptions | undefined) as ChatterStream<ItemOf<P>>;
  }

  /** Shuts the client down for good: closes the socket, fails pending calls, clears every timer. */
  close(): void {
    this.#connection.close();
  }
}

/**
 * Creates a client and starts connecting at once.
 * @param options - `url`, and optionally `verbose`, `pingInterval`, `WebSocket`, ...
 * @returns the client
 */
export function createClient(options: ClientOptions): ChatterClient {
  return new ChatterClient(options);
}
