/**
 * Relays: a client whose session lives on another instance (its home) is
 * served there, through this one. The instance that holds the client's
 * socket forwards its messages to the home over the cluster bus, and the home
 * treats the relay as the session's socket: the same engine resumes it, so
 * calls in flight both ways settle exactly once, a handler still running
 * answers, a repeat is answered from the home's kept answers, calls the home
 * makes reach the client, and missed broadcasts are replayed once, in order.
 *
 * Bus messages (MessagePack, on the receiving instance's own channel):
 * - `{ k: "open", r, from, hello }`: the socket side asks the home to take a socket; `hello` is its first message.
 * - `{ k: "up", r, from, m }`: a message from the client. `{ k: "down", r, m }`: one to it.
 * - `{ k: "closed", r, from, code, reason }`: the client's socket closed.
 * - `{ k: "close", r, code, reason }`: the home closes it. `{ k: "gone", r }`: the home has no such session.
 * - `{ k: "moved", r, session }`: the home handed the session over instead (nothing was in flight): it lives
 *   on the socket's instance from now on (cluster-sessions.ts), and the relay ends before it began. The home
 *   lets the session go only once this message is sent.
 * - `{ k: "redirect", r, to }`: the session moved on from there (its record is not written yet): try `to`.
 *
 * A relay is only as good as the bus: when a message cannot be sent, or the
 * bus was interrupted, both ends drop the relay as if the socket had closed,
 * and the client resumes (again exactly once) wherever it reconnects.
 */
import { unref } from "../engine/timers.ts";
import { CloseCode, decodeFrames, encodeFrame, FrameType, type HelloFrame } from "../wire/frames.ts";
import type { RelayMessage } from "./cluster.ts";
import type { ServerCore } from "./core.ts";
import { awaitHello, receive } from "./intake.ts";
import { SocketState } from "./socket-state.ts";

/** The close code a dropped socket reports (never sent on the wire). */
const DROPPED = 1006;
/** How long a relay waits for its home's first answer (its WELCOME) before giving up. */
const OPEN_TIMEOUT_MS = 5000;
/** Redirects a socket follows to find a session that keeps moving. */
const MAX_REDIRECTS = 3;

/** How relays reach another instance: `send` resolves to how many got it (0: nobody listens there), rejects on an outage. */
export type RelaySend = (instance: string, message: RelayMessage) => Promise<number>;

/** Where relays hand sessions over (cluster-sessions.ts). */
export interface RelaySessions {
  /**
   * At the home, for a socket relayed from `from`: its HELLO.
   * @returns the session's handover (it moves there once `handedOver` is told the message went), true to relay
   *   the socket, an instance id when the session moved on there, "busy" when it cannot be taken now, false
   *   when there is no such session
   */
  accept(hello: HelloFrame, from: string): Uint8Array | string | boolean;
  /** At the home: whether the handover of the session in `hello` reached the other instance (false: it stays here). */
  handedOver(hello: HelloFrame, sent: boolean): void;
  /** At the socket's instance: the home handed the session over. */
  moved(state: SocketState, hello: HelloFrame, session: Uint8Array, from: string): void;
  /** At the socket's instance: the home has no such session. */
  gone(state: SocketState, hello: HelloFrame): void;
}

/** At the home: the socket of a session whose client is connected to another instance. */
export class RemoteSocket {
  constructor(
    /** The instance holding the client's socket. */
    readonly instance: string,
    /** The relay's number there. */
    readonly relay: number,
  ) {}
}

export class Relays {
  /** Client sockets here whose session lives elsewhere, by relay number. */
  private readonly out = new Map<number, SocketState>();
  /** Sockets of sessions living here whose client is connected elsewhere, by `instance relay`. */
  private readonly in = new Map<string, SocketState>();
  /** Relays here whose home has answered (a WELCOME, or a close); an open one that stays unanswered closes. */
  private readonly answered = new Set<number>();
  private nextRelay = 1;

  /** Set once the cluster's session router exists. */
  sessions: RelaySessions | null = null;

  constructor(
    private readonly core: ServerCore,
    private readonly send: RelaySend,
  ) {}

  /** Relayed sockets, both ways (for tests and logs). */
  get size(): number {
    return this.out.size + this.in.size;
  }

  // The socket side.

  /**
   * Relays a client's socket to its session's home.
   * @param hello - the socket's first message, which the home handles as if it came in there
   * @returns whether the home listens (false: it is gone or cut off; the socket is not relayed)
   */
  async open(state: SocketState, home: string, frame: HelloFrame, hello: Uint8Array, hops = 0): Promise<boolean> {
    const relay = this.nextRelay++;
    state.relay = { home, relay, hello: frame, hops };
    this.out.set(relay, state);
    const reached = await this.send(home, { k: "open", r: relay, from: this.core.instanceId, hello, address: state.address }).catch(
      () => 0,
    );
    if (reached === 0 && this.out.get(relay) === state) {
      this.forget(relay);
      state.relay = null;
    }
    if (reached > 0) {
      // Reached, but the home may die before it answers: a relay that hears nothing in time closes.
      const timer = setTimeout(() => {
        if (state.relay?.relay === relay && !this.answered.has(relay))
          this.dropOut(state, "the instance holding this session did not answer");
      }, OPEN_TIMEOUT_MS);
      unref(timer);
    }
    return reached > 0;
  }

  /** A message from a relayed client: on to its home. */
  up(state: SocketState, message: Uint8Array): void {
    const link = state.relay;
    if (!link) return;
    this.forward(state, link, { k: "up", r: link.relay, from: this.core.instanceId, m: message });
  }

  /** A relayed client's socket closed: its home parks the session. */
  socketClosed(state: SocketState, code: number, reason: string): void {
    const link = state.relay;
    if (!link || this.out.get(link.relay) !== state) return;
    this.forget(link.relay);
    void this.send(link.home, { k: "closed", r: link.relay, from: this.core.instanceId, code, reason }).catch(() => {});
  }

  /** Sends to the home; when it cannot be reached, the socket closes and the client resumes elsewhere or later. */
  private forward(state: SocketState, link: { home: string; relay: number }, message: RelayMessage): void {
    this.send(link.home, message).then(
      (reached) => {
        if (reached === 0) this.dropOut(state, "the instance holding this session stopped listening");
      },
      () => this.dropOut(state, "the cluster backend is unreachable"),
    );
  }

  private dropOut(state: SocketState, why: string): void {
    const link = state.relay;
    if (!link || this.out.get(link.relay) !== state) return;
    this.forget(link.relay);
    this.core.closeSocket(state, CloseCode.TryAgainLater, `${why}; reconnect to resume`);
  }

  /** From the home, for a client here. */
  private toClient(m: Extract<RelayMessage, { k: "down" | "close" | "gone" | "moved" | "redirect" }>): void {
    const state = this.out.get(m.r);
    if (!state) return;
    this.answered.add(m.r);
    if (m.k === "down") {
      const result = this.core.driver?.send(state.socket, m.m);
      if (result === "dropped") {
        this.forget(m.r);
        this.core.closeSocket(state, CloseCode.SlowConsumer, `slow consumer: more than ${this.core.limits.maxBufferedBytes} bytes waiting`);
      }
      return;
    }
    this.forget(m.r);
    const link = state.relay;
    state.relay = null;
    if (m.k === "close") return this.core.closeSocket(state, m.code, m.reason);
    if (!link) return;
    if (m.k === "moved") return this.sessions?.moved(state, link.hello, m.session, link.home);
    if (m.k === "redirect") return this.redirect(state, link, m.to);
    this.sessions?.gone(state, link.hello); // It ended meanwhile: a fresh one, here.
  }

  /** The session moved on from the instance asked: ask where it went (a few times at most, so no loop). */
  private redirect(state: SocketState, link: NonNullable<SocketState["relay"]>, to: string): void {
    const hops = (link.hops ?? 0) + 1;
    const message = encodeFrame(link.hello);
    if (hops > MAX_REDIRECTS) return this.core.closeSocket(state, CloseCode.TryAgainLater, "the session is moving; try again");
    this.open(state, to, link.hello, message, hops).then(
      (reached) => {
        if (!reached && !state.closing)
          this.core.closeSocket(state, CloseCode.TryAgainLater, "the session's instance is unreachable; try again");
      },
      () => {},
    );
  }

  private forget(relay: number): void {
    this.out.delete(relay);
    this.answered.delete(relay);
  }

  // The home.

  /**
   * A socket relayed from another instance: its session moves there if nothing is in flight, else its HELLO
   * resumes the session here through the relay; a socket for a session not here is turned away.
   */
  private opened(m: Extract<RelayMessage, { k: "open" }>): void {
    const hello = helloOf(m.hello);
    const sessions = this.sessions;
    const outcome = hello && sessions ? sessions.accept(hello, m.from) : false;
    if (outcome instanceof Uint8Array) {
      const sent = (ok: boolean) => sessions?.handedOver(hello as HelloFrame, ok);
      this.send(m.from, { k: "moved", r: m.r, session: outcome }).then(
        (reached) => sent(reached > 0),
        () => sent(false),
      );
      return;
    }
    if (outcome === "busy") {
      const reason = "the session is busy moving; try again";
      void this.send(m.from, { k: "close", r: m.r, code: CloseCode.TryAgainLater, reason }).catch(() => {});
      return;
    }
    if (typeof outcome === "string") {
      void this.send(m.from, { k: "redirect", r: m.r, to: outcome }).catch(() => {});
      return;
    }
    if (!outcome) {
      void this.send(m.from, { k: "gone", r: m.r }).catch(() => {});
      return;
    }
    const state = new SocketState("relayed", undefined, m.address);
    state.socket = new RemoteSocket(m.from, m.r);
    state.remote = true;
    this.in.set(key(m.from, m.r), state);
    awaitHello(this.core, state);
    receive(this.core, state, m.hello);
  }

  /** Sends a message to a relayed client's socket (the core's `write` for a remote socket). */
  write(socket: RemoteSocket, message: Uint8Array): void {
    const state = this.in.get(key(socket.instance, socket.relay));
    if (!state) return;
    this.send(socket.instance, { k: "down", r: socket.relay, m: message }).then(
      (reached) => {
        if (reached === 0) this.dropIn(state, "the instance holding the socket stopped listening");
      },
      () => this.dropIn(state, "the cluster backend is unreachable"),
    );
  }

  /** Closes a relayed client's socket (the core's `closeSocket` for a remote socket); the close reaches the core as for any socket. */
  close(socket: RemoteSocket, code: number, reason: string): void {
    const state = this.in.get(key(socket.instance, socket.relay));
    if (!state) return;
    this.in.delete(key(socket.instance, socket.relay));
    void this.send(socket.instance, { k: "close", r: socket.relay, code, reason }).catch(() => {});
    queueMicrotask(() => this.core.closed(state, code, reason));
  }

  /** The relay broke: the session parks, as when a socket drops. */
  private dropIn(state: SocketState, why: string): void {
    const socket = state.socket as RemoteSocket;
    if (this.in.get(key(socket.instance, socket.relay)) !== state) return;
    this.in.delete(key(socket.instance, socket.relay));
    this.core.closed(state, DROPPED, why);
  }

  // Both.

  /** A relay message for this instance. */
  receive(m: RelayMessage): void {
    switch (m.k) {
      case "open":
        return this.opened(m);
      case "up": {
        const state = this.in.get(key(m.from, m.r));
        if (state) return receive(this.core, state, m.m);
        // Not (or no longer) relayed here: the socket side closes it, and the client resumes.
        void this.send(m.from, { k: "close", r: m.r, code: CloseCode.TryAgainLater, reason: "relay ended; reconnect to resume" }).catch(
          () => {},
        );
        return;
      }
      case "closed": {
        const state = this.in.get(key(m.from, m.r));
        if (!state) return;
        this.in.delete(key(m.from, m.r));
        return this.core.closed(state, m.code, m.reason);
      }
      default:
        return this.toClient(m);
    }
  }

  /** The bus may have lost messages: every relay, both ways, is dropped; clients resume through the engine. */
  interrupted(): void {
    for (const state of [...this.out.values()]) this.dropOut(state, "the cluster bus was interrupted");
    for (const state of [...this.in.values()]) this.dropIn(state, "the cluster bus was interrupted");
  }

  /** Closes every relay on shutdown: sockets here are closed by the core; sessions here end with it. */
  clear(): void {
    this.out.clear();
    this.in.clear();
    this.answered.clear();
  }
}

function key(instance: string, relay: number): string {
  return `${instance} ${relay}`;
}

/** @returns the HELLO at the head of a relayed socket's first message, or null if it has none */
function helloOf(message: Uint8Array): HelloFrame | null {
  try {
    const frame = decodeFrames(message, 1000)[0];
    return frame?.[0] === FrameType.Hello && typeof frame[4] === "string" ? (frame as HelloFrame) : null;
  } catch {
    return null;
  }
}
