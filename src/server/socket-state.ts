/**
 * The core's state for one socket, made when an upgrade is admitted. The
 * adapter keeps it with the runtime's socket as an opaque ticket (on Bun it is
 * `ws.data`) and hands it back with each event.
 */
import type { HelloFrame, Refusal } from "../wire/frames.ts";

const CLOSING = 1;
const COUNTED = 2;
/** Frames one socket's second can count: the clock's seconds times this stays an exact integer for 136 years. */
const FRAME_COUNT = 2 ** 21;

export class SocketState {
  /** The runtime's socket, set when it opens; the core works it through the adapter's driver. */
  socket: unknown = null;
  /** The session this socket serves, once its HELLO is handled. */
  session: unknown = null;
  /** The client's address as admission judged it (per /64 for IPv6), for the per-address limit. */
  address: string | null;
  /**
   * The core's clock when the socket last sent something, and the frames it sent in that second, as one
   * number: `window * FRAME_COUNT + frames` (see `window` and `frames`).
   */
  private rate = 0;
  /** `closing` and `counted`, as bits. */
  private flags = 0;
  /**
   * What a socket needs only until its handshake (the claimed client id, the connection data, the HELLO
   * timer), and what only a few sockets need at all (relayed or refused ones): a side object, dropped once the
   * handshake binds a session (`bound`) unless one of the few. With the numbers and flags packed, six fields
   * keep an open socket's state in a 64-byte heap cell, not 80 or 112 (thousands of idle sockets add up).
   */
  private rare: RareState | null;

  constructor(clientId: string, data: unknown, address: string | null = null) {
    this.address = address;
    this.rare = { clientId, data, helloTimer: undefined, relay: null, remote: false, refusal: null };
  }

  /** Set once the core closes the socket: frames still in a batch after that are ignored. */
  get closing(): boolean {
    return (this.flags & CLOSING) !== 0;
  }
  set closing(on: boolean) {
    this.flags = on ? this.flags | CLOSING : this.flags & ~CLOSING;
  }

  /** Whether the socket counts against the connection limits (from open until closed). */
  get counted(): boolean {
    return (this.flags & COUNTED) !== 0;
  }
  set counted(on: boolean) {
    this.flags = on ? this.flags | COUNTED : this.flags & ~COUNTED;
  }

  /** The core's clock when the socket last sent something: the second its frame count is for. */
  get window(): number {
    return Math.floor(this.rate / FRAME_COUNT);
  }
  set window(tick: number) {
    this.rate = tick * FRAME_COUNT + this.frames;
  }

  /** Frames received in that second (counting stops at FRAME_COUNT - 1, far past any limit). */
  get frames(): number {
    return this.rate % FRAME_COUNT;
  }
  set frames(n: number) {
    this.rate = this.window * FRAME_COUNT + Math.min(n, FRAME_COUNT - 1);
  }

  /**
   * Counts `n` frames sent at `tick`, starting the count again in a new second: one read and one write of
   * the packed number, for every message.
   * @returns the frames counted in this second so far
   */
  countFrames(tick: number, n: number): number {
    const rate = this.rate;
    const before = Math.floor(rate / FRAME_COUNT) === tick ? rate % FRAME_COUNT : 0;
    const frames = Math.min(before + n, FRAME_COUNT - 1);
    this.rate = tick * FRAME_COUNT + frames;
    return frames;
  }

  /** The client's id: as claimed in the upgrade URL (`cid`) until the handshake, then its session's (proven). */
  get clientId(): string {
    return (this.session as { clientId: string } | null)?.clientId ?? this.rare?.clientId ?? "";
  }
  set clientId(id: string) {
    if (id !== this.clientId) this.made().clientId = id;
  }

  /** What `getConnectionData` returned; gone once the handshake has handed it to the session. */
  get data(): unknown {
    return this.rare?.data;
  }

  /** Closes the socket if no HELLO comes in time; undefined once one came. */
  get helloTimer(): ReturnType<typeof setTimeout> | undefined {
    return this.rare?.helloTimer;
  }
  set helloTimer(timer: ReturnType<typeof setTimeout> | undefined) {
    if (timer !== undefined || this.rare) this.made().helloTimer = timer;
  }

  /** Set on a client socket here whose session lives on another instance: where its messages go (relay.ts). */
  get relay(): RelayRoute | null {
    return this.rare?.relay ?? null;
  }
  set relay(route: RelayRoute | null) {
    if (route || this.rare) this.made().relay = route;
  }

  /** Set when `socket` is a relay's end at the session's home (a `RemoteSocket`), not a runtime socket. */
  get remote(): boolean {
    return this.rare?.remote ?? false;
  }
  set remote(remote: boolean) {
    if (remote || this.rare) this.made().remote = remote;
  }

  /** Set when admission refused: the socket opens only to be told why, then closes. */
  get refusal(): Refusal | null {
    return this.rare?.refusal ?? null;
  }
  set refusal(refusal: Refusal | null) {
    if (refusal || this.rare) this.made().refusal = refusal;
  }

  /** A session is bound to this socket: what only the handshake needed goes, and the side object with it if that was all. */
  bound(): void {
    const rare = this.rare;
    if (!rare) return;
    if (rare.helloTimer === undefined && !rare.relay && !rare.remote && !rare.refusal) this.rare = null;
    else rare.data = undefined;
  }

  private made(): RareState {
    this.rare ??= { clientId: "", data: undefined, helloTimer: undefined, relay: null, remote: false, refusal: null };
    return this.rare;
  }
}

/** Where a client socket here is relayed: the session's home, the relay's number, its HELLO, and redirects followed. */
type RelayRoute = { home: string; relay: number; hello: HelloFrame; hops?: number };

interface RareState {
  clientId: string;
  data: unknown;
  helloTimer: ReturnType<typeof setTimeout> | undefined;
  relay: RelayRoute | null;
  remote: boolean;
  refusal: Refusal | null;
}
