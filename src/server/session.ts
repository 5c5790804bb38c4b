/**
 * One client session inside the server core. It outlives a dropped socket:
 * when the client resumes within the resume window, the same session carries
 * on with its data, topics and calls in flight. Apps see it only through its
 * public face, `ServerConnection` (connection.ts).
 */
import { Peer } from "../engine/peer.ts";
import type { PeerOptions } from "../engine/types.ts";
import type { Proc } from "../proc.ts";
import { FrameBatch } from "../wire/batch.ts";
import type { SendResult } from "./adapter.ts";
import type { SubscriptionChange } from "./broadcast-log.ts";
import type { SocketState } from "./socket-state.ts";
import type { TopicList, Topics } from "./topics.ts";

/** A batch stops growing here: big enough to carry bursts, small enough to keep other work flowing. */
const BATCH_BYTES = 64 * 1024;

/** What a session and its public face need of the server core. */
export interface SessionHost {
  readonly peerOptions: PeerOptions;
  readonly topics: Topics<Session>;
  /** Sends one message to a socket through the adapter's driver. */
  write(state: SocketState, message: Uint8Array): SendResult;
  /** The socket cannot keep up: close it. */
  slowConsumer(session: Session): void;
  /** Ends a session for good. */
  endSession(session: Session, code: number, reason: string): void;
  /** Fans out a broadcast whose input was checked already; in a cluster, resolves once the cluster's log has it. */
  broadcast(
    topics: string | Iterable<string>,
    proc: Proc,
    input: unknown,
    exclude: ReadonlySet<Session>,
    volatile: boolean,
  ): Promise<void> | undefined;
  report(error: unknown): void;
}

export class Session {
  /** What apps hold (a `ServerConnection`): the handlers' second argument. */
  readonly connection: object;
  readonly peer: Peer;
  /** The newest broadcast when the session began: it needs none older on resume. */
  readonly since: number;
  /** The topics this session is subscribed to; null until the first. */
  topics: TopicList | null = null;
  /** Subscription changes, to judge which logged broadcasts it missed; null when none matter. */
  changes: SubscriptionChange[] | null = null;
  changesFrom = 0;
  /** The socket serving this session now, if any. */
  state: SocketState | null = null;
  ended = false;
  /**
   * What only some sessions need (parked ones, and those moving between instances of a cluster), made when
   * first set: four fields less keep every session in a smaller heap cell (thousands of idle sessions add up).
   */
  private rare: SessionRare | null = null;
  /** Frames made in this tick, sent together as one message at its end (see flush); null when none. */
  private outbox: FrameBatch | null = null;

  /**
   * @param face - makes the session's public face
   */
  constructor(
    readonly host: SessionHost,
    face: (session: Session) => object,
    readonly clientId: string,
    readonly sessionId: string,
    /** The secret a client must show to resume this session. */
    readonly token: string,
    readonly data: unknown,
    /** The client's address when the session began (per /64 for IPv6), for the per-address limits. */
    readonly address: string | null,
  ) {
    this.since = host.topics.log.seq;
    this.connection = face(this);
    this.peer = new Peer(host.peerOptions, this.connection);
  }

  /** Ends the session when the resume window passes. */
  get expiry(): ReturnType<typeof setTimeout> | undefined {
    return this.rare?.expiry;
  }
  set expiry(timer: ReturnType<typeof setTimeout> | undefined) {
    if (timer !== undefined || this.rare) this.made().expiry = timer;
  }

  /** Set while the session waits for a resume and counts against the connection limits. */
  get parkedAt(): { address: string | null } | null {
    return this.rare?.parkedAt ?? null;
  }
  set parkedAt(at: { address: string | null } | null) {
    if (at || this.rare) this.made().parkedAt = at;
  }

  /** Set while the session hands itself over to another instance of a cluster (cluster-sessions.ts), and after. */
  get movedTo(): string | null {
    return this.rare?.movedTo ?? null;
  }
  set movedTo(to: string | null) {
    if (to || this.rare) this.made().movedTo = to;
  }

  /**
   * Set while a session that arrived from another instance of a cluster has not caught up on the broadcasts it
   * missed: its resumes catch up from the cluster's log (cluster-sessions.ts), not from this instance's.
   */
  get catchUp(): CatchUp | null {
    return this.rare?.catchUp ?? null;
  }
  set catchUp(c: CatchUp | null) {
    if (c || this.rare) this.made().catchUp = c;
  }

  private made(): SessionRare {
    this.rare ??= { expiry: undefined, parkedAt: null, movedTo: null, catchUp: null };
    return this.rare;
  }

  /** The live socket's state, when there is one (topics read it to skip sockets that are behind). */
  get live(): SocketState | null {
    return this.state;
  }

  /** @returns whether this session is subscribed to the topic */
  isSubscribed(topic: string): boolean {
    const list = this.topics;
    return list instanceof Set ? list.has(topic) : (list?.includes(topic) ?? false);
  }

  /** Queues a frame for the live socket; the frames of one tick go out as one message (PROTOCOL.md, "Framing"). */
  send(frame: Uint8Array): void {
    if (!this.state) return;
    this.outbox ??= new FrameBatch(BATCH_BYTES, Number.POSITIVE_INFINITY);
    const full = this.outbox.add(frame);
    if (full) this.write(full);
    if (this.outbox.size === 1 && !full) queueMicrotask(() => this.flush());
  }

  /** Sends what is queued. Backpressure holds new outgoing calls until the socket drains; a drop means a slow consumer. */
  flush(): void {
    const message = this.outbox?.take();
    if (message) this.write(message);
  }

  private write(message: Uint8Array): void {
    const state = this.state;
    if (!state) return; // Gone meanwhile: the engine resends what matters after a resume.
    const result = this.host.write(state, message);
    if (result === "queued") this.peer.hold();
    else if (result === "dropped") this.host.slowConsumer(this);
  }
}

/** Where a session that arrived from another instance catches up from (see `Session.catchUp`). */
export interface CatchUp {
  /** The newest broadcast it is known to have. */
  after: number;
  epoch: string;
  changes: SubscriptionChange[] | null;
  topics: string[];
  /** Its calls died with the instance it came from, and the client has not been told yet. */
  callsLost: boolean;
  /** Set while a catch-up reads the log. */
  busy: boolean;
}

interface SessionRare {
  expiry: ReturnType<typeof setTimeout> | undefined;
  parkedAt: { address: string | null } | null;
  movedTo: string | null;
  catchUp: CatchUp | null;
}
