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
import { encodeFrame, type Frame, FrameType } from "../wire/frames.ts";
import type { SendResult } from "./adapter.ts";
import type { SubscriptionChange } from "./broadcast-log.ts";
import type { ClientIdentity } from "./identity.ts";
import type { SocketState } from "./socket-state.ts";
import type { TopicList, Topics } from "./topics.ts";

/** A batch stops growing here: big enough to carry bursts, small enough to keep other work flowing. */
const BATCH_BYTES = 64 * 1024;
/** The engine numbers calls from here (engine/calls.ts): an end that made no call has every call below it settled. */
const FIRST_CALL_ID = 1;

/** What a session and its public face need of the server core. */
export interface SessionHost {
  readonly peerOptions: PeerOptions;
  /** Makes the sessions' resume tokens. */
  readonly identity: ClientIdentity;
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

/** Sessions with frames queued in this tick, and whether the microtask that sends them is queued. */
const unflushed: Session[] = [];
let flushQueued = false;

/** Notes a session with frames to send at the end of the tick: one microtask for every session, not one each. */
function toFlush(session: Session): void {
  unflushed.push(session);
  if (flushQueued) return;
  flushQueued = true;
  queueMicrotask(flushAll);
}

/** Sends what every noted session has queued (a session flushed already, by the end of a message, has nothing). */
function flushAll(): void {
  flushQueued = false;
  // Sends may queue more (a write that fails ends a session): those are noted and sent in this same loop.
  for (let i = 0; i < unflushed.length; i++) {
    const session = unflushed[i] as Session;
    unflushed[i] = undefined as unknown as Session;
    try {
      session.flush();
    } catch (err) {
      session.host.report(err); // A bug: the other sessions still get theirs.
    }
  }
  unflushed.length = 0;
}

export class Session {
  /** What apps hold (a `ServerConnection`): the handlers' second argument. */
  readonly connection: object;
  /** The newest broadcast when the session began: it needs none older on resume. */
  readonly since: number;
  /** The topics this session is subscribed to; null until the first. */
  topics: TopicList | null = null;
  /** The socket serving this session now, if any. */
  state: SocketState | null = null;
  /**
   * What only some sessions need (parked or ended ones, those whose subscriptions changed while broadcasts were
   * kept, and those moving between instances of a cluster), made when first set: every field less keeps an
   * idle session in a smaller heap cell (112 bytes, not 160; thousands of idle sessions add up).
   */
  private rare: SessionRare | null = null;
  /** The engine, made on first use (see `peer`); null while the session has neither made nor answered a call. */
  private engine: Peer | null = null;
  /**
   * Frames made in this tick, sent together as one message at its end (see flush): a lone frame as it is (the
   * usual case, one answer per message), a batch from the second; null when none.
   */
  private outbox: Uint8Array | FrameBatch | null = null;

  /**
   * @param face - makes the session's public face
   * @param token - the secret a client must show to resume this session; null for the one the host makes
   *   from the session's id (`ClientIdentity.sessionToken`)
   */
  constructor(
    readonly host: SessionHost,
    face: (session: Session) => object,
    readonly clientId: string,
    readonly sessionId: string,
    token: string | null,
    readonly data: unknown,
    /** The client's address when the session began (per /64 for IPv6), for the per-address limits. */
    readonly address: string | null,
  ) {
    this.since = host.topics.log.seq;
    this.connection = face(this);
    // One that came from another instance with a different key keeps the token it was given.
    if (token !== null && token !== host.identity.sessionToken(sessionId)) this.made().token = token;
  }

  /**
   * The engine that makes and answers calls over this session. Made on first use: most sessions of a busy
   * server sit idle, taking broadcasts, and an engine with nothing to do is only memory. One made late starts
   * where one made at once would be: on the live socket, if any, with nothing to resend.
   */
  get peer(): Peer {
    if (!this.engine) {
      this.engine = new Peer(this.host.peerOptions, this.connection);
      if (this.state) this.engine.attach(this, false);
    }
    return this.engine;
  }

  /** The engine if it was made, for what needs nothing of an idle one (attach, detach, drain). */
  get madePeer(): Peer | null {
    return this.engine;
  }

  /** Every call of the client's with a lower id is settled (for WELCOME): with no engine yet, none was made. */
  get settledBelow(): number {
    return this.engine ? this.engine.settledBelow : FIRST_CALL_ID;
  }

  /** The secret a client must show to resume this session. */
  get token(): string {
    return this.rare?.token ?? this.host.identity.sessionToken(this.sessionId);
  }

  /** Set once the session has ended for good. */
  get ended(): boolean {
    return this.rare?.ended ?? false;
  }
  set ended(ended: boolean) {
    if (ended || this.rare) this.made().ended = ended;
  }

  /** Subscription changes, to judge which logged broadcasts it missed; null when none matter. */
  get changes(): SubscriptionChange[] | null {
    return this.rare?.changes ?? null;
  }
  set changes(changes: SubscriptionChange[] | null) {
    if (changes || this.rare) this.made().changes = changes;
  }

  /** Changes before this broadcast were forgotten (see `Subscriber.changesFrom`). */
  get changesFrom(): number {
    return this.rare?.changesFrom ?? 0;
  }
  set changesFrom(seq: number) {
    if (seq || this.rare) this.made().changesFrom = seq;
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
    this.rare ??= {
      expiry: undefined,
      parkedAt: null,
      movedTo: null,
      catchUp: null,
      ended: false,
      changes: null,
      changesFrom: 0,
      token: null,
    };
    return this.rare;
  }

  /** The live socket's state, when there is one (topics read it to skip sockets that are behind). */
  get live(): SocketState | null {
    return this.state;
  }

  /** @returns whether this session is subscribed to the topic */
  isSubscribed(topic: string): boolean {
    const list = this.topics;
    if (typeof list === "string") return list === topic;
    return list instanceof Set ? list.has(topic) : (list?.includes(topic) ?? false);
  }

  /** Handles a frame from the client, after the handshake. */
  receive(frame: Frame): void {
    // A keepalive alone does not make the engine: with none, no call was made either way (PROTOCOL.md, PING).
    if (!this.engine && frame[0] === FrameType.Ping) return this.send(encodeFrame([FrameType.Pong, FIRST_CALL_ID]));
    this.peer.receive(frame);
  }

  /** Queues a frame for the live socket; the frames of one tick go out as one message (PROTOCOL.md, "Framing"). */
  send(frame: Uint8Array): void {
    if (!this.state) return;
    const queued = this.outbox;
    if (queued === null) {
      // The first frame of this tick: it waits for the end of the tick, with any that follow.
      this.outbox = frame;
      toFlush(this);
      return;
    }
    let batch: FrameBatch;
    if (queued instanceof FrameBatch) batch = queued;
    else {
      batch = new FrameBatch(BATCH_BYTES, Number.POSITIVE_INFINITY);
      batch.add(queued);
      this.outbox = batch;
    }
    const full = batch.add(frame);
    if (full) this.write(full);
  }

  /** Sends what is queued. Backpressure holds new outgoing calls until the socket drains; a drop means a slow consumer. */
  flush(): void {
    const queued = this.outbox;
    if (queued === null) return;
    // Broadcasts made before these frames go out before them (Topics.queue).
    this.host.topics.publishQueued();
    // Not kept once empty: most sessions go quiet between messages, and thousands of idle batches add up.
    this.outbox = null;
    const message = queued instanceof FrameBatch ? queued.take() : queued;
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
  ended: boolean;
  changes: SubscriptionChange[] | null;
  changesFrom: number;
  /** Set only when it is not the one made from the session's id. */
  token: string | null;
}
