/**
 * A client's link to its server, one socket after another: open, HELLO, WELCOME, keepalive pings, drop, and
 * reconnect with backoff, or stop for good after a refusal that retrying cannot mend. What survives the
 * sockets is the ClientSession (session.ts) and the engine Peer, so calls wait out a drop. ChatterClient
 * (client.ts) is the public face over it.
 */
import type { Peer } from "../engine/peer.ts";
import { ChatterError, describeThrown } from "../errors.ts";
import * as FrameType from "../wire/frame-type.ts";
import { decodeFrames, encodeFrame, type Frame, type WelcomeFrame } from "../wire/frames.ts";
import { CLIENT_CLOSED, HANDSHAKE_TIMEOUT, PING_TIMEOUT, PROTOCOL_ERROR, VERSION_MISMATCH } from "./close-codes.ts";
import { socketUrl, watchEnvironment } from "./environment.ts";
import { Keepalive } from "./keepalive.ts";
import type { ClientEvents } from "./listeners.ts";
import type { ClientOptions, Log, WebSocketConstructor } from "./options.ts";
import { isTransient, MAX_DELAY, refusalError } from "./refusal.ts";
import { ClientSession } from "./session.ts";
import { backoffDelay, ConnectionState } from "./state.ts";
import { batchingTransport } from "./transport.ts";

export class Connection {
  readonly session: ClientSession;
  #state = ConnectionState.Disconnected;
  #socket: WebSocket | null = null;
  /** Why the server refused the socket now closing (from its REFUSED frame), if it did. */
  #refusal: ChatterError | null = null;
  /** Set after a refusal that retrying cannot mend: the client stays disconnected. */
  #stopped = false;
  #closedForGood = false;
  #attempt = 0;
  /** Counts connection attempts, so a slow `url()` from an abandoned attempt is ignored. */
  #attemptToken = 0;
  /** No reconnect before this moment (`performance.now()`): a refusal's retryAfter. */
  #notBefore = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #keepalive: Keepalive;
  readonly #opts: ClientOptions;
  readonly #WS: WebSocketConstructor;
  readonly #peer: Peer;
  readonly #listeners: ClientEvents;
  readonly #log: Log;
  readonly #unwatch: () => void;

  /** Starts connecting at once. */
  constructor(opts: ClientOptions, WS: WebSocketConstructor, peer: Peer, listeners: ClientEvents, log: Log) {
    this.#opts = opts;
    this.#WS = WS;
    this.#peer = peer;
    this.#listeners = listeners;
    this.#log = log;
    this.session = new ClientSession(opts);
    this.#keepalive = new Keepalive(
      () => this.#socket?.send(encodeFrame([FrameType.Ping, this.#peer.settledBelow])),
      (every) => {
        this.#log?.(`no pong within ${every} ms; the connection is dead`);
        this.#drop(PING_TIMEOUT, "ping timeout", true);
      },
    );
    this.#unwatch = watchEnvironment(() => this.#wake());
    this.#connect();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Whether a keepalive PING waits for its PONG. */
  get awaitingPong(): boolean {
    return this.#keepalive.awaiting;
  }

  /** Shuts down for good: closes the socket, fails pending calls, clears every timer. */
  close(): void {
    if (this.#closedForGood) return;
    this.#closedForGood = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#connectTimer);
    this.#unwatch();
    this.#drop(CLIENT_CLOSED, "client closed");
    this.#peer.close("the client was closed");
    this.#setState(ConnectionState.Disconnected);
  }

  /** The frames the engine leaves to the connection: PONG, REFUSED and WELCOME. */
  onControl(frame: Frame): void {
    if (frame[0] === FrameType.Pong) return this.#keepalive.pong();
    if (frame[0] === FrameType.Refused && this.#state === ConnectionState.Connecting) {
      // The close that follows tells the rest; keep why.
      this.#refusal = refusalError(frame[1]);
      return;
    }
    if (frame[0] !== FrameType.Welcome || this.#state !== ConnectionState.Connecting || !this.#socket) {
      return this.#drop(PROTOCOL_ERROR, `unexpected frame type ${frame[0]}`, true);
    }
    this.#welcome(frame, this.#socket);
  }

  #setState(next: ConnectionState): void {
    if (next === this.#state) return;
    this.#state = next;
    this.#listeners.stateChanged(next, { resumed: this.session.resumed });
  }

  #connect(): void {
    if (this.#closedForGood) return;
    this.#setState(ConnectionState.Connecting);
    this.#armConnectTimeout();
    const target = this.#opts.url;
    if (typeof target === "string") return this.#open(target);
    const attempt = ++this.#attemptToken;
    new Promise<string>((resolve) => resolve(target())).then(
      (url) => {
        if (attempt === this.#attemptToken && !this.#closedForGood && this.#state === ConnectionState.Connecting) this.#open(url);
      },
      (err) => {
        if (attempt !== this.#attemptToken || this.#closedForGood) return;
        this.#listeners.failed(new ChatterError("DISCONNECTED", `url() failed: ${describeThrown(err)}`));
        this.#lost(1006, "url() failed");
      },
    );
  }

  #open(target: string): void {
    const url = socketUrl(target, this.session.identity.clientId);
    // Never the query string: it may carry a token.
    this.#log?.(`connecting to ${url.replace(/\?.*$/, "")} (attempt ${this.#attempt + 1})`);
    let ws: WebSocket;
    try {
      ws = new this.#WS(url);
    } catch (err) {
      this.#log?.(`could not open a socket: ${(err as Error).message}`);
      return this.#lost(1006, "socket could not be created");
    }
    takeBytes(ws);
    this.#socket = ws;
    ws.onopen = () => {
      this.#log?.("socket open; sending HELLO");
      ws.send(this.session.hello(this.#peer));
    };
    ws.onmessage = (ev) => this.#onMessage(ev.data);
    ws.onerror = () => this.#log?.("socket error (a close event follows)");
    ws.onclose = (ev) => {
      if (this.#socket !== ws) return; // A socket we already dropped.
      this.#socket = null;
      this.#lost(ev.code, ev.reason);
    };
  }

  /**
   * Bounds one attempt, from `url()` to WELCOME: a `url()` that never settles, or a network that swallows
   * packets and leaves a socket opening for minutes, is given up and retried sooner.
   */
  #armConnectTimeout(): void {
    const limit = this.#opts.connectTimeout ?? 10_000;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = setTimeout(() => {
      if (this.#state !== ConnectionState.Connecting) return;
      this.#log?.(`no handshake within ${limit} ms; retrying`);
      this.#attemptToken++; // A url() still pending belongs to this attempt: ignore it.
      if (this.#socket) this.#drop(HANDSHAKE_TIMEOUT, "connect timeout", true);
      else this.#lost(HANDSHAKE_TIMEOUT, "url() did not settle in time");
    }, limit);
  }

  #onMessage(data: unknown): void {
    let frames: Frame[];
    try {
      if (!(data instanceof ArrayBuffer || ArrayBuffer.isView(data))) throw new Error("text frame");
      // A Buffer (Bun, ws) is a Uint8Array already: read as it is, no second object made per message.
      const bytes =
        data instanceof Uint8Array
          ? data
          : data instanceof ArrayBuffer
            ? new Uint8Array(data)
            : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      frames = decodeFrames(bytes);
    } catch (err) {
      this.#log?.(`bad frame from server: ${(err as Error).message}`);
      return this.#drop(PROTOCOL_ERROR, "malformed frame from server", true);
    }
    const ws = this.#socket;
    // A frame may drop this socket (a bad WELCOME); the rest of the batch belonged to it.
    for (const frame of frames) if (this.#socket === ws) this.#peer.receive(frame);
  }

  #welcome(
    [, sessionId, token, resumed, settledBelow, maxMessageBytes, clientId, clientKey, callsLost]: WelcomeFrame,
    ws: WebSocket,
  ): void {
    const session = this.session;
    session.adoptIdentity(clientId, clientKey, this.#log);
    this.#refusal = null;
    // A session the client gave up (a refusal) was lost as surely as one the server could not resume.
    const reset = !resumed && (session.token !== null || session.lost);
    session.lost = false;
    if (reset) {
      this.#log?.(`the server could not resume session ${session.id}; starting session ${sessionId}`);
      this.#peer.reset("the server started a new session");
    } else if (resumed && callsLost) {
      this.#log?.(`session ${sessionId} resumed on another instance; calls in flight were lost with the old one`);
      this.#peer.lostCalls("the server instance holding the session stopped");
    } else this.#log?.(`handshake done (session ${sessionId}${resumed ? ", resumed" : ""})`);
    session.id = sessionId;
    session.token = token;
    session.resumed = resumed;
    this.#attempt = 0;
    clearTimeout(this.#connectTimer);
    this.#peer.maxFrameBytes = maxMessageBytes;
    // A fresh session is set up (onSession) before the calls queued for it go out.
    const setup = !resumed && this.#listeners.session.size > 0;
    this.#peer.attach(batchingTransport(ws, maxMessageBytes), resumed, settledBelow, setup);
    this.#keepalive.start((this.#opts.pingInterval ?? 30) * 1000);
    // Setup first, so its calls (re-joining, re-authenticating) go ahead of those the listeners below make.
    if (setup) this.#listeners.setUpSession(() => this.#peer.sendQueue());
    this.#setState(ConnectionState.Connected);
    if (reset) this.#listeners.sessionReset();
  }

  /** Lets go of the socket now, without waiting for its close event. */
  #drop(code: number, reason: string, thenReconnect = false): void {
    const ws = this.#socket;
    this.#socket = null;
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
    if (thenReconnect) this.#lost(code, reason);
    else this.#keepalive.stop();
  }

  /** The socket is gone: hold calls for a resume, then reconnect. */
  #lost(code: number, reason: string): void {
    this.#keepalive.stop();
    clearTimeout(this.#connectTimer);
    this.#peer.detach();
    const why = `closed with ${code}${reason ? `: ${reason}` : ""}`;
    const refusal = this.#refusal;
    this.#refusal = null;
    this.#setState(ConnectionState.Disconnected);
    if (this.#closedForGood) return;
    if (code === VERSION_MISMATCH) {
      return this.#giveUp(new ChatterError("PROTOCOL", `the server speaks another protocol version (${reason}); not reconnecting`));
    }
    if (refusal && !isTransient(refusal)) {
      if (typeof this.#opts.url !== "function") return this.#giveUp(refusal);
      // New credentials may come from url(): fail what waits on these, and try again.
      this.#listeners.failed(refusal);
      this.#forgetSession(refusal);
    } else if (refusal) this.#listeners.failed(refusal);
    if (this.#opts.reconnect === false) {
      // Without a reconnect there will be no resume: calls in flight fail now rather than at their timeout.
      if (!this.session.lost) this.#peer.reset(why);
      return this.#log?.(`disconnected (${code} ${reason}); reconnect is off`);
    }
    const backoff = backoffDelay(this.#attempt++, this.#opts.reconnect?.minDelay ?? 250, this.#opts.reconnect?.maxDelay ?? 30_000);
    const retryAfter = Math.min(refusal?.retryAfter ?? 0, MAX_DELAY);
    this.#notBefore = performance.now() + retryAfter;
    const delay = Math.max(backoff, retryAfter);
    this.#log?.(`disconnected (${code}${reason ? ` ${reason}` : ""}); reconnecting in ${Math.round(delay)} ms`);
    clearTimeout(this.#reconnectTimer);
    // Not unref'd: an open client that is reconnecting should keep its process alive, as its socket did.
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  /** A failure retrying cannot mend: every call fails with it, and the client stays disconnected. */
  #giveUp(error: ChatterError): void {
    this.#stopped = true;
    // Nobody listening must still hear that the client stopped for good.
    if (this.#listeners.error.size === 0) console.error(`[chatter] client: ${error.code}: ${error.message}; not reconnecting`);
    this.#listeners.failed(error);
    this.#forgetSession(error);
  }

  /**
   * Gives the session up: calls never sent fail with `error`, calls sent with `DISCONNECTED` (they may have
   * run), and the next connection starts a fresh session, reported to `onReset`.
   */
  #forgetSession(error: ChatterError): void {
    this.#peer.failAll(error);
    this.session.forget();
  }

  /** The network came back or the page became visible: retry now rather than after the backoff. */
  #wake(): void {
    if (this.#closedForGood || this.#stopped) return;
    // A refusal's retryAfter holds even when the network comes back.
    if (this.#state === ConnectionState.Disconnected && this.#opts.reconnect !== false && performance.now() >= this.#notBefore) {
      this.#log?.("network is back or page is visible; reconnecting now");
      clearTimeout(this.#reconnectTimer);
      this.#connect();
    } else if (this.#state === ConnectionState.Connected && !this.#keepalive.awaiting) {
      // The socket may have died while the page slept: a ping finds out fast.
      this.#keepalive.ping();
    }
  }
}

/**
 * Asks the socket for binary messages as bytes it can read at once: a Buffer where the socket offers one (Bun's
 * WebSocket and the ws package, "nodebuffer": one object per message instead of an ArrayBuffer and a view of
 * it), else an ArrayBuffer (browsers and Deno keep their binaryType when given a value they do not know).
 */
function takeBytes(ws: WebSocket): void {
  try {
    (ws as { binaryType: string }).binaryType = "nodebuffer";
  } catch {
    // A socket that throws on a value it does not know: ArrayBuffer below.
  }
  if ((ws.binaryType as string) !== "nodebuffer") ws.binaryType = "arraybuffer";
}
