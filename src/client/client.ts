/**
 * The client: one Peer that outlives its sockets, plus the connection state
 * machine (handshake, keepalive pings, reconnect with backoff).
 */
import type { CallContext } from "../engine/context.ts";
import { addMiddleware, type Middleware } from "../engine/middleware.ts";
import { type CallOptions, type HandlerEntry, Peer } from "../engine/peer.ts";
import { unref } from "../engine/timers.ts";
import { ChatterError, describeThrown, fromWireError } from "../errors.ts";
import { addHandler, type InputArgs, type ParsedInputOf, type Proc, type ResultOf, type ReturnOf } from "../proc.ts";
import {
  CloseCode,
  decodeFrames,
  encodeFrame,
  type Frame,
  FrameType,
  PROTOCOL_VERSION,
  type Refusal,
  type WelcomeFrame,
} from "../wire/frames.ts";
import { batchingLink } from "./batch.ts";
import { socketUrl, watchEnvironment } from "./environment.ts";
import { type Identity, storedIdentity, storeIdentity, uuid } from "./identity.ts";
import { backoffDelay, ConnectionState } from "./state.ts";

/** The standard WebSocket constructor, or a compatible one such as `ws`'s. */
export type WebSocketConstructor = new (url: string) => WebSocket;

/** Options of `createClient`. */
export interface ClientOptions {
  /**
   * The server URL, `ws://` or `wss://` (`http(s)://` is turned into `ws(s)://`). Or a function that returns
   * it, called before every connection attempt: for fresh credentials in the query string. With a function, a
   * client whose connection is refused (UNAUTHORIZED, FORBIDDEN) keeps trying, since its credentials may change.
   */
  url: string | (() => string | Promise<string>);
  /** Log what happens and why. */
  verbose?: boolean;
  /** Seconds between keepalive pings. Defaults to 30. A ping unanswered by the next one drops the socket. */
  pingInterval?: number;
  /** The WebSocket class to use; needed on Node 20 (`import WebSocket from "ws"`). Defaults to the global one. */
  WebSocket?: WebSocketConstructor;
  /**
   * A client id kept from an earlier run (`client.clientId`), with its `clientKey`.
   * Without the key the server does not accept the id and assigns a fresh one.
   */
  clientId?: string;
  /** The key that proves `clientId` (`client.clientKey` of the earlier run). Keep it secret. */
  clientKey?: string;
  /** Reconnect after a drop. Defaults to `{ minDelay: 250, maxDelay: 30_000 }` (ms); `false` turns it off. */
  reconnect?: false | { minDelay?: number; maxDelay?: number };
  /** Calls kept while disconnected; more fail at once with `LIMIT`. Defaults to 1000. */
  maxQueue?: number;
  /** Send handler stacks to the server with `HANDLER_ERROR`. */
  exposeStack?: boolean;
  /** Milliseconds a socket has to open and finish the handshake before it is dropped and retried. Defaults to 10 000. */
  connectTimeout?: number;
}

/** A handler on the client: gets the parsed input, the client and the call's context. */
export type ClientHandler<TIn, TOut> = (
  input: TIn,
  client: ChatterClient,
  ctx: CallContext,
) => TOut | undefined | Promise<TOut | undefined> | void | Promise<void>;

/** What a state listener learns besides the state. */
export interface StateInfo {
  /** On `Connected`: whether the previous session resumed, with its calls and broadcasts intact. */
  resumed: boolean;
}

type Listener = (state: ConnectionState, info: StateInfo) => unknown;

export class ChatterClient {
  private identity: Identity;
  private _sessionId: string = uuid();
  private token: string | null = null;
  private _resumed = false;
  private readonly resetListeners = new Set<() => unknown>();
  private readonly errorListeners = new Set<(error: ChatterError) => unknown>();
  /** Why the server refused the socket now closing (from its REFUSED frame), if it did. */
  private refusal: ChatterError | null = null;
  /** Set after a refusal that retrying cannot mend: the client stays disconnected. */
  private stopped = false;
  /** Counts connection attempts, so a slow `url()` from an abandoned attempt is ignored. */
  private attemptToken = 0;
  /** Set when a refusal made the client give its session up; the next fresh session is a reset. */
  private sessionLost = false;
  /** No reconnect before this moment (`performance.now()`): a refusal's retryAfter. */
  private notBefore = 0;
  private readonly sessionListeners = new Set<(client: ChatterClient) => unknown>();
  /** Counts session setups, so only the newest one releases the queue. */
  private setupRun = 0;
  private _state = ConnectionState.Disconnected;
  private socket: WebSocket | null = null;
  private closedForGood = false;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private awaitingPong = false;
  private readonly listeners = new Set<Listener>();
  private readonly handlers = new Map<string, HandlerEntry>();
  private readonly peer: Peer;
  private readonly opts: ClientOptions;
  private readonly log: ((msg: string) => void) | undefined;
  private readonly WS: WebSocketConstructor;
  private readonly unwatch: () => void;

  constructor(options: ClientOptions) {
    this.opts = options;
    this.log = options.verbose ? (msg) => console.log(`[chatter] client: ${msg}`) : undefined;
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) {
      throw new TypeError('[chatter] no global WebSocket here; pass one, e.g. createClient({ url, WebSocket }) with WebSocket from "ws"');
    }
    this.WS = WS;
    this.identity = options.clientId ? { clientId: options.clientId, clientKey: options.clientKey ?? null } : storedIdentity();
    this.peer = new Peer(
      {
        handlers: this.handlers,
        side: "client",
        log: this.log,
        exposeStack: options.exposeStack ?? false,
        maxQueue: options.maxQueue ?? 1000,
        onControl: (frame) => this.onControl(frame),
      },
      this,
    );
    this.unwatch = watchEnvironment(() => this.wake());
    this.connect();
  }

  /**
   * This client's id, which `server.callClient` reaches. The server assigns it
   * on the first connection and the client proves it afterwards with
   * `clientKey`; in a browser both are kept in `localStorage`, so the id
   * survives reloads. Until the first handshake it is a local proposal.
   */
  get clientId(): string {
    return this.identity.clientId;
  }

  /**
   * The secret that proves `clientId` to the server, or null before the first
   * handshake. To keep the id across runs outside a browser, store both and
   * pass them to `createClient`. Never log or share it.
   */
  get clientKey(): string | null {
    return this.identity.clientKey;
  }

  /** The current connection state. */
  get state(): ConnectionState {
    return this._state;
  }

  /**
   * The id of this client's session with the server: made fresh by each
   * `createClient`, kept while the session resumes, and replaced when the
   * server starts a new session (see `onReset`).
   */
  get sessionId(): string {
    return this._sessionId;
  }

  /** Whether the current connection resumed the previous session (`false` on a first or fresh session). */
  get resumed(): boolean {
    return this._resumed;
  }

  /** `true` when the handshake is done and calls flow. */
  get isConnected(): boolean {
    return this._state === ConnectionState.Connected;
  }

  /**
   * Registers a callback for state changes.
   * @returns a function that unregisters it
   */
  onStateChange(callback: Listener): () => void {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  /**
   * Registers a callback for when the server could not resume the session
   * (it restarted, or the client was away longer than its resume window) and
   * started a fresh one. Whatever the server held for this client is gone and
   * broadcasts may have been missed: fetch state again.
   * @returns a function that unregisters it
   */
  onReset(callback: () => unknown): () => void {
    this.resetListeners.add(callback);
    return () => this.resetListeners.delete(callback);
  }

  /**
   * Registers a callback that sets up each fresh session: on the first connection and after every reset,
   * before any call queued meanwhile is sent. It may be async; the calls it makes go out first, and the
   * queued calls wait until every such callback has settled. A callback that throws goes to `onError`, and
   * the queue still goes out. Use it to re-join rooms or re-authenticate.
   * @returns a function that unregisters it
   */
  onSession(callback: (client: ChatterClient) => unknown): () => void {
    this.sessionListeners.add(callback);
    return () => this.sessionListeners.delete(callback);
  }

  /**
   * Registers a callback for connection-level failures, each a `ChatterError`: the server refused the
   * connection (`UNAUTHORIZED`, `FORBIDDEN`, `RATE_LIMITED` with `retryAfter` in ms, `UNAVAILABLE`, or the code
   * `getConnectionData` threw), speaks another protocol version (`PROTOCOL`), or `url()` failed.
   * @returns a function that unregisters it
   */
  onError(callback: (error: ChatterError) => unknown): () => void {
    this.errorListeners.add(callback);
    return () => this.errorListeners.delete(callback);
  }

  /**
   * Wraps every call from the server and every broadcast this client receives, in registration order, around
   * its handler: `(input, client, ctx, next) => result`, as `server.use`.
   * @returns a function that removes it
   */
  use(middleware: Middleware<ChatterClient>): () => void {
    return addMiddleware(this.peer.opts, middleware);
  }

  /**
   * Implements a procedure the server can call on this client.
   * @param proc - the procedure, made with `createProc`
   * @param handler - gets the parsed input, the client and a context with an abort `signal`
   * @returns a function that removes the handler
   */
  on<P extends Proc>(proc: P, handler: ClientHandler<ParsedInputOf<P>, ReturnOf<P>>): () => void {
    return addHandler(this.handlers, { proc, handler } as HandlerEntry, "client");
  }

  /**
   * Calls a procedure on the server. While disconnected the call waits in a
   * bounded queue, and goes out once the client reconnects.
   * @param proc - the procedure, made with `createProc`
   * @param args - its input (checked against `takes` before sending), then `{ timeout, signal }`
   * @returns the server's result, checked against `returns`
   */
  call<P extends Proc>(proc: P, ...args: [...InputArgs<P>, options?: CallOptions]): Promise<ResultOf<P>> {
    return this.peer.call(proc, args[0], args[1] as CallOptions | undefined) as Promise<ResultOf<P>>;
  }

  /** Shuts the client down for good: closes the socket, fails pending calls, clears every timer. */
  close(): void {
    if (this.closedForGood) return;
    this.closedForGood = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    this.unwatch();
    this.dropSocket(CloseCode.ClientClosed, "client closed");
    this.peer.close("the client was closed");
    this.setState(ConnectionState.Disconnected);
  }

  private setState(next: ConnectionState): void {
    if (next === this._state) return;
    this._state = next;
    const info = { resumed: this._resumed };
    for (const listener of [...this.listeners]) this.notify("state listener", () => listener(next, info));
  }

  private notify(what: string, run: () => unknown): void {
    try {
      const out = run();
      if (out instanceof Promise) out.catch((err) => this.report(what, err));
    } catch (err) {
      this.report(what, err);
    }
  }

  private report(what: string, err: unknown): void {
    console.error(`[chatter] client: ${what} failed:`, err);
  }

  private connect(): void {
    if (this.closedForGood) return;
    this.setState(ConnectionState.Connecting);
    this.armConnectTimeout();
    const target = this.opts.url;
    if (typeof target === "string") return this.open(target);
    const attempt = ++this.attemptToken;
    new Promise<string>((resolve) => resolve(target())).then(
      (url) => {
        if (attempt === this.attemptToken && !this.closedForGood && this._state === ConnectionState.Connecting) this.open(url);
      },
      (err) => {
        if (attempt !== this.attemptToken || this.closedForGood) return;
        this.emitError(new ChatterError("DISCONNECTED", `url() failed: ${describeThrown(err)}`));
        this.lost(1006, "url() failed");
      },
    );
  }

  private open(target: string): void {
    const url = socketUrl(target, this.identity.clientId);
    // Never the query string: it may carry a token.
    this.log?.(`connecting to ${url.replace(/\?.*$/, "")} (attempt ${this.attempt + 1})`);
    let ws: WebSocket;
    try {
      ws = new this.WS(url);
    } catch (err) {
      this.log?.(`could not open a socket: ${(err as Error).message}`);
      return this.lost(1006, "socket could not be created");
    }
    ws.binaryType = "arraybuffer";
    this.socket = ws;
    ws.onopen = () => {
      this.log?.("socket open; sending HELLO");
      ws.send(
        encodeFrame([
          FrameType.Hello,
          PROTOCOL_VERSION,
          this.identity.clientId,
          this._sessionId,
          this.token,
          this.peer.lastEvent,
          this.peer.settledBelow,
          this.identity.clientKey,
        ]),
      );
    };
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onerror = () => this.log?.("socket error (a close event follows)");
    ws.onclose = (ev) => {
      if (this.socket !== ws) return; // A socket we already dropped.
      this.socket = null;
      this.lost(ev.code, ev.reason);
    };
  }

  /**
   * Bounds one attempt, from `url()` to WELCOME: a `url()` that never settles, or a network that swallows
   * packets and leaves a socket opening for minutes, is given up and retried sooner.
   */
  private armConnectTimeout(): void {
    const limit = this.opts.connectTimeout ?? 10_000;
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (this._state !== ConnectionState.Connecting) return;
      this.log?.(`no handshake within ${limit} ms; retrying`);
      this.attemptToken++; // A url() still pending belongs to this attempt: ignore it.
      if (this.socket) this.dropSocket(CloseCode.HandshakeTimeout, "connect timeout", true);
      else this.lost(CloseCode.HandshakeTimeout, "url() did not settle in time");
    }, limit);
  }

  private onMessage(data: unknown): void {
    let frames: Frame[];
    try {
      if (!(data instanceof ArrayBuffer || ArrayBuffer.isView(data))) throw new Error("text frame");
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      frames = decodeFrames(bytes);
    } catch (err) {
      this.log?.(`bad frame from server: ${(err as Error).message}`);
      return this.dropSocket(CloseCode.ProtocolError, "malformed frame from server", true);
    }
    const ws = this.socket;
    // A frame may drop this socket (a bad WELCOME); the rest of the batch belonged to it.
    for (const frame of frames) if (this.socket === ws) this.peer.receive(frame);
  }

  private onControl(frame: Frame): void {
    if (frame[0] === FrameType.Pong) {
      this.awaitingPong = false;
      return;
    }
    if (frame[0] === FrameType.Refused && this._state === ConnectionState.Connecting) {
      // The close that follows tells the rest; keep why.
      this.refusal = refusalError(frame[1]);
      return;
    }
    if (frame[0] !== FrameType.Welcome || this._state !== ConnectionState.Connecting || !this.socket) {
      return this.dropSocket(CloseCode.ProtocolError, `unexpected frame type ${frame[0]}`, true);
    }
    this.welcome(frame, this.socket);
  }

  private welcome([, sessionId, token, resumed, settledBelow, maxMessageBytes, clientId, clientKey]: WelcomeFrame, ws: WebSocket): void {
    if (clientId && clientKey && (clientId !== this.identity.clientId || clientKey !== this.identity.clientKey)) {
      if (clientId !== this.identity.clientId) this.log?.(`the server assigned client id ${clientId}`);
      this.identity = { clientId, clientKey };
      storeIdentity(this.identity);
    }
    this.refusal = null;
    // A session the client gave up (a refusal) was lost as surely as one the server could not resume.
    const reset = !resumed && (this.token !== null || this.sessionLost);
    this.sessionLost = false;
    if (reset) {
      this.log?.(`the server could not resume session ${this._sessionId}; starting session ${sessionId}`);
      this.peer.reset("the server started a new session");
    } else this.log?.(`handshake done (session ${sessionId}${resumed ? ", resumed" : ""})`);
    this._sessionId = sessionId;
    this.token = token;
    this._resumed = resumed;
    this.attempt = 0;
    clearTimeout(this.connectTimer);
    this.peer.maxFrameBytes = maxMessageBytes;
    // A fresh session is set up (onSession) before the calls queued for it go out.
    const setup = !resumed && this.sessionListeners.size > 0;
    this.peer.attach(batchingLink(ws, maxMessageBytes), resumed, settledBelow, setup);
    this.startPings();
    // Setup first, so its calls (re-joining, re-authenticating) go ahead of those the listeners below make.
    if (setup) this.setUpSession();
    this.setState(ConnectionState.Connected);
    if (reset) for (const listener of [...this.resetListeners]) this.notify("reset listener", listener);
  }

  /** Runs the onSession callbacks, then lets the queued calls go; a callback that fails goes to onError. */
  private setUpSession(): void {
    const run = ++this.setupRun;
    const settled = [...this.sessionListeners].map((listener) => new Promise<unknown>((resolve) => resolve(listener(this))));
    void Promise.allSettled(settled).then((results) => {
      for (const r of results) {
        if (r.status === "rejected") this.emitError(asChatterError(r.reason, "an onSession callback failed"));
      }
      // A newer fresh session runs its own setup and ends the hold itself.
      if (run === this.setupRun) this.peer.sendQueue();
    });
  }

  private startPings(): void {
    clearInterval(this.pingTimer);
    this.awaitingPong = false;
    const every = (this.opts.pingInterval ?? 30) * 1000;
    this.pingTimer = setInterval(() => {
      if (this.awaitingPong) {
        this.log?.(`no pong within ${every} ms; the connection is dead`);
        return this.dropSocket(CloseCode.PingTimeout, "ping timeout", true);
      }
      this.ping();
    }, every);
    unref(this.pingTimer);
  }

  private ping(): void {
    this.awaitingPong = true;
    this.socket?.send(encodeFrame([FrameType.Ping, this.peer.settledBelow]));
  }

  /** Lets go of the socket now, without waiting for its close event. */
  private dropSocket(code: number, reason: string, thenReconnect = false): void {
    const ws = this.socket;
    this.socket = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      // Closed while connecting, `ws` (Node) emits 'error', and an 'error' nobody listens to crashes the process.
      ws.onerror = () => {};
      try {
        ws.close(code, reason);
      } catch {
        // Already closing; nothing to do.
      }
    }
    if (thenReconnect) this.lost(code, reason);
    else clearInterval(this.pingTimer);
  }

  /** The socket is gone: hold calls for a resume, then reconnect. */
  private lost(code: number, reason: string): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.connectTimer);
    this.peer.detach();
    const why = `closed with ${code}${reason ? `: ${reason}` : ""}`;
    const refusal = this.refusal;
    this.refusal = null;
    this.setState(ConnectionState.Disconnected);
    if (this.closedForGood) return;
    if (code === CloseCode.VersionMismatch) {
      return this.giveUp(new ChatterError("PROTOCOL", `the server speaks another protocol version (${reason}); not reconnecting`));
    }
    if (refusal && !TRANSIENT.has(String(refusal.code))) {
      if (typeof this.opts.url !== "function") return this.giveUp(refusal);
      // New credentials may come from url(): fail what waits on these, and try again.
      this.emitError(refusal);
      this.forgetSession(refusal);
    } else if (refusal) this.emitError(refusal);
    if (this.opts.reconnect === false) {
      // Without a reconnect there will be no resume: calls in flight fail now rather than at their timeout.
      if (!this.sessionLost) this.peer.reset(why);
      return this.log?.(`disconnected (${code} ${reason}); reconnect is off`);
    }
    const backoff = backoffDelay(this.attempt++, this.opts.reconnect?.minDelay ?? 250, this.opts.reconnect?.maxDelay ?? 30_000);
    const retryAfter = Math.min(refusal?.retryAfter ?? 0, MAX_DELAY);
    this.notBefore = performance.now() + retryAfter;
    const delay = Math.max(backoff, retryAfter);
    this.log?.(`disconnected (${code}${reason ? ` ${reason}` : ""}); reconnecting in ${Math.round(delay)} ms`);
    clearTimeout(this.reconnectTimer);
    // Not unref'd: an open client that is reconnecting should keep its process alive, as its socket did.
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** A failure retrying cannot mend: every call fails with it, and the client stays disconnected. */
  private giveUp(error: ChatterError): void {
    this.stopped = true;
    // Nobody listening must still hear that the client stopped for good.
    if (this.errorListeners.size === 0) console.error(`[chatter] client: ${error.code}: ${error.message}; not reconnecting`);
    this.emitError(error);
    this.forgetSession(error);
  }

  /**
   * Gives the session up: calls never sent fail with `error`, calls sent with `DISCONNECTED` (they may have
   * run), and the next connection starts a fresh session, reported to `onReset`.
   */
  private forgetSession(error: ChatterError): void {
    this.peer.failAll(error);
    this.token = null;
    this.sessionLost = true;
  }

  private emitError(error: ChatterError): void {
    if (this.errorListeners.size === 0) this.log?.(`${error.code}: ${error.message}`);
    for (const listener of [...this.errorListeners]) this.notify("error listener", () => listener(error));
  }

  /** The network came back or the page became visible: retry now rather than after the backoff. */
  private wake(): void {
    if (this.closedForGood || this.stopped) return;
    // A refusal's retryAfter holds even when the network comes back.
    if (this._state === ConnectionState.Disconnected && this.opts.reconnect !== false && performance.now() >= this.notBefore) {
      this.log?.("network is back or page is visible; reconnecting now");
      clearTimeout(this.reconnectTimer);
      this.connect();
    } else if (this._state === ConnectionState.Connected && !this.awaitingPong) {
      // The socket may have died while the page slept: a ping finds out fast.
      this.ping();
    }
  }
}

/** @returns `reason` as a ChatterError, for onError */
function asChatterError(reason: unknown, what: string): ChatterError {
  return reason instanceof ChatterError ? reason : new ChatterError("HANDLER_ERROR", `${what}: ${describeThrown(reason)}`);
}

/** setTimeout's longest delay; a longer one fires at once. */
const MAX_DELAY = 2 ** 31 - 1;

/** Refusals that pass with time: the client waits (at least `retryAfter`) and tries again. */
const TRANSIENT = new Set(["RATE_LIMITED", "UNAVAILABLE"]);

/** @returns the refusal from a REFUSED frame as an error, with `retryAfter` (ms) when the server gave one */
function refusalError(refusal: Refusal): ChatterError {
  const error = fromWireError(refusal);
  if (typeof refusal.retryAfter === "number" && refusal.retryAfter > 0) Object.assign(error, { retryAfter: refusal.retryAfter });
  return error;
}

/**
 * Creates a client and starts connecting at once.
 * @param options - `url`, and optionally `verbose`, `pingInterval`, `WebSocket`, ...
 * @returns the client
 */
export function createClient(options: ClientOptions): ChatterClient {
  return new ChatterClient(options);
}
