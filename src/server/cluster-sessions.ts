/**
 * Sessions across a cluster: where a client that reconnects to an instance
 * without its session goes. Each session lives on one instance, its home,
 * whose record (cluster-records.ts) says where that is:
 * - home alive and the session idle (nothing in flight either way): the home hands the session over, and it
 *   moves here with its numbering and kept answers, so calls after it run here directly;
 * - home alive and something in flight: the socket is relayed to the home (relay.ts), whose engine resumes
 *   it as for any socket, so a handler still running answers and a repeat is answered from the home's kept
 *   answers; a later reconnect moves the session once it is idle;
 * - home gone (its presence expired): the session is taken over from its record: same id, data and topics.
 *   Calls in flight died with the old home; WELCOME says so (`callsLost`) and the client fails them with
 *   `DISCONNECTED` (they may have run, never twice);
 * - no record, or a token that does not match: a fresh session, as on one instance.
 * A session that moves or is taken over gets the broadcasts it missed read back from the cluster's log.
 */
import type { PeerHandover } from "../engine/peer.ts";
import { decode, encode } from "../wire/codec.ts";
import { CloseCode, encodeFrame, FrameType, type HelloFrame, type WelcomeFrame } from "../wire/frames.ts";
import { type SubscriptionChange, wasSubscribed } from "./broadcast-log.ts";
import type { ClusterBackend, ClusterStats } from "./cluster.ts";
import type { ClusterLog } from "./cluster-log.ts";
import { hashToken, recordKey, type SessionRecord, type SessionRecords } from "./cluster-records.ts";
import { ServerConnection } from "./connection.ts";
import type { ServerCore } from "./core.ts";
import { handshake } from "./handshake.ts";
import { sameSecret } from "./identity.ts";
import { awaitHello } from "./intake.ts";
import type { Relays } from "./relay.ts";
import { Session } from "./session.ts";
import type { SocketState } from "./socket-state.ts";

/** A session as it moves from its home to the instance holding its client's socket (MessagePack on the bus). */
export interface SessionHandover {
  sessionId: string;
  clientId: string;
  token: string;
  data: unknown;
  topics: string[];
  /** Subscription changes since the oldest broadcast kept, to judge which missed broadcasts it needed. */
  changes: SubscriptionChange[] | null;
  changesFrom: number;
  since: number;
  epoch: string;
  peer: PeerHandover;
}

/** What a session arriving here starts from: a handover from a live home, or a record of a dead one. */
interface Arrival {
  clientId: string;
  data: unknown;
  topics: string[];
  changes: SubscriptionChange[] | null;
  changesFrom: number;
  since: number;
  epoch: string;
  /** The engine's state, when it moves; null when the old home died with its calls. */
  peer: PeerHandover | null;
  /** The instance it comes from. */
  from: string;
}

export class SessionRouter {
  constructor(
    private readonly core: ServerCore,
    private readonly backend: ClusterBackend,
    private readonly log: ClusterLog,
    private readonly relays: Relays,
    private readonly records: SessionRecords,
    /** Whether an instance is alive, by its presence. */
    private readonly isAlive: (instance: string) => Promise<boolean>,
    private readonly stats: ClusterStats,
  ) {}

  /**
   * Routes a socket whose HELLO names a session this instance does not have: to the session's home, into a
   * session that moves or is taken over here, or to a fresh one.
   */
  route(state: SocketState, hello: HelloFrame, message: Uint8Array): void {
    clearTimeout(state.helloTimer);
    state.helloTimer = undefined; // Frames until this is decided break the protocol (handle refuses them).
    this.core.handshaking.delete(state);
    this.find(state, hello, message).catch((err: unknown) => {
      if (state.closing) return;
      this.core.log?.(`cluster: could not route session ${hello[3]}: ${(err as Error).message}`);
      this.core.closeSocket(state, CloseCode.TryAgainLater, "the cluster backend is unreachable; try again");
    });
  }

  private async find(state: SocketState, hello: HelloFrame, message: Uint8Array): Promise<void> {
    const sessionId = hello[3];
    const bytes = await this.backend.get(recordKey(sessionId));
    if (state.closing) return;
    const record = bytes ? (decode(bytes) as SessionRecord) : undefined;
    const matches = record && typeof hello[4] === "string" && sameSecret(record.tokenHash, hashToken(hello[4]));
    if (!record || !matches || record.home === this.core.instanceId || this.core.sessions.has(sessionId)) {
      return this.local(state, hello);
    }
    // The home answers with a handover, or takes the relayed socket (relay.ts calls `arrived` or goes on relaying).
    if (await this.relays.open(state, record.home, hello, message)) return;
    if (state.closing) return;
    // The home does not listen: dead, or cut off from the bus for a moment. Only a dead one's sessions are taken.
    if (await this.isAlive(record.home)) {
      return this.core.closeSocket(state, CloseCode.TryAgainLater, "the instance holding this session is unreachable; try again");
    }
    if (state.closing || !("data" in record)) return this.local(state, hello);
    await this.arrive(state, hello, { ...record, data: record.data, changes: null, changesFrom: 0, peer: null, from: record.home });
  }

  /** Handles the HELLO here, as on one instance (a fresh session unless the session is here). */
  private local(state: SocketState, hello: HelloFrame): void {
    if (state.closing) return;
    awaitHello(this.core, state); // handshake() takes a HELLO only while one is awaited
    handshake(this.core, state, hello);
  }

  /**
   * At the home, for a socket relayed from `to`: hands the session over if nothing is in flight.
   * @returns the handover, the session gone from here; or null (the socket is relayed instead)
   */
  handOver(hello: HelloFrame, to: string): Uint8Array | null {
    const session = this.core.sessions.get(hello[3]);
    const peer = session?.peer.handover();
    if (!session || !peer || session.ended) return null;
    const h: SessionHandover = {
      sessionId: session.sessionId,
      clientId: session.clientId,
      token: session.token,
      data: session.data,
      topics: [...(session.topics ?? [])],
      changes: session.changes,
      changesFrom: session.changesFrom,
      since: session.since,
      epoch: this.log.epoch ?? "",
      peer,
    };
    let bytes: Uint8Array;
    try {
      bytes = encode(h);
    } catch {
      return null; // Its data cannot cross: it stays here, relayed.
    }
    session.movedTo = to;
    this.core.endSession(session, CloseCode.Moved, `session moved to instance ${to}`);
    return bytes;
  }

  /** Here, for a relayed socket: its home handed the session over. */
  moved(state: SocketState, hello: HelloFrame, bytes: Uint8Array, from: string): void {
    const h = decode(bytes) as SessionHandover;
    this.arrive(state, hello, { ...h, from }).catch((err: unknown) => {
      this.core.report(err);
      if (!state.closing) this.core.closeSocket(state, CloseCode.TryAgainLater, "the session could not move here; reconnect");
    });
  }

  /** Here, for a relayed socket: its home no longer has the session (it ended meanwhile). A fresh one, here. */
  gone(state: SocketState, hello: HelloFrame): void {
    this.local(state, hello);
  }

  /** Makes a session that moved or was taken over live here, with the broadcasts it missed read back from the log. */
  private async arrive(state: SocketState, hello: HelloFrame, a: Arrival): Promise<void> {
    const [, , , sessionId, token, lastEvent, settledBelow] = hello;
    const after = Math.max(lastEvent, a.since);
    // Before `changesFrom` its subscriptions are not known well enough to tell what it missed.
    const missed = after < a.changesFrom ? null : await this.log.since(after, a.epoch);
    const core = this.core;
    if (state.closing) return;
    if (!missed || core.sessions.has(sessionId)) {
      // Cannot: broadcasts it needed are gone, or it is here already. A fresh session; the client resets.
      return this.local(state, hello);
    }
    const session = new Session(core, (s) => new ServerConnection(s), a.clientId, sessionId, token as string, a.data, state.address);
    if (a.peer) session.peer.takeOver(a.peer);
    core.sessions.set(sessionId, session);
    core.connections.add(session.connection as ServerConnection);
    for (const topic of a.topics) {
      try {
        core.topics.subscribe(session, topic);
      } catch (err) {
        core.report(err, session.connection as ServerConnection);
      }
    }
    session.state = state;
    state.session = session;
    state.clientId = a.clientId;
    const welcome: WelcomeFrame = [FrameType.Welcome, sessionId, token as string, true, session.peer.settledBelow, core.maxMessageBytes];
    welcome.push(a.clientId, core.identity.sign(a.clientId));
    if (!a.peer) welcome.push(true); // callsLost
    core.write(state, encodeFrame(welcome));
    // What it missed, as it was subscribed then; only what this instance has delivered so far: newer ones
    // reach the session live, now that it is subscribed.
    const then = { topics: a.topics, changes: a.changes, isSubscribed: (t: string) => a.topics.includes(t) };
    let caught = 0;
    for (const { seq, broadcast: b } of missed) {
      if (seq > core.topics.log.seq || b.excludeSessions.includes(sessionId)) continue;
      if (!b.topics.some((t) => wasSubscribed(then, t, seq))) continue;
      session.send(encodeFrame([FrameType.Event, seq, b.name, b.input]));
      caught++;
    }
    session.flush();
    core.topics.rejoin(session);
    session.peer.attach(session, a.peer !== null, settledBelow);
    this.records.changed(session);
    if (a.peer) this.stats.moved++;
    else this.stats.takenOver++;
    const how = a.peer ? "moved here from" : "was taken over here after the death of";
    core.log?.(`session ${sessionId} of client ${a.clientId} ${how} ${a.from} (${caught} broadcast(s) caught up)`);
    core.hook(() => core.options.onResume?.(session.connection as ServerConnection), session);
  }
}
