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
import { handover, type PeerHandover, takeOver } from "../engine/handover.ts";
import { decode, encode } from "../wire/codec.ts";
import { CloseCode, encodeFrame, FrameType, type HelloFrame } from "../wire/frames.ts";
import { type SubscriptionChange, wasSubscribed } from "./broadcast-log.ts";
import type { ClusterBackend, ClusterStats } from "./cluster.ts";
import { leftKey } from "./cluster-core.ts";
import type { ClusterLog, Logged } from "./cluster-log.ts";
import { hashToken, recordKey, type SessionRecord, type SessionRecords } from "./cluster-records.ts";
import { faceOf, type ServerConnection } from "./connection.ts";
import type { ServerCore } from "./core.ts";
import { bind, handshake, resumedWelcome } from "./handshake.ts";
import { sameSecret } from "./identity.ts";
import { awaitHello } from "./intake.ts";
import type { Relays } from "./relay.ts";
import { Session } from "./session.ts";
import type { SocketState } from "./socket-state.ts";
import { topicsIn } from "./topic-list.ts";

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
  /** It was taken over from a dead instance and its client has not been told yet (WELCOME's callsLost). */
  callsLost: boolean;
}

/** What a session arriving here starts from: a handover from a live home, or a record of a dead one. */
type Arrival = Omit<SessionHandover, "sessionId" | "token" | "peer"> & {
  /** The engine's state, when it moves; null when the old home died with its calls. */
  peer: PeerHandover | null;
  /** The instance it comes from. */
  from: string;
};

/** Sessions remembered as moved away, so a socket sent here by a record not yet rewritten finds them. */
const MAX_MOVED_AWAY = 10_000;

export class SessionRouter {
  /** Sessions that moved from here lately, and where to: a record may still name this instance for a moment. */
  private readonly movedAway = new Map<string, string>();
  /** Instances found silent, and since when (ms). */
  private readonly silent = new Map<string, number>();

  constructor(
    private readonly core: ServerCore,
    private readonly backend: ClusterBackend,
    private readonly log: ClusterLog,
    private readonly relays: Relays,
    private readonly records: SessionRecords,
    /** Whether an instance is alive, by its presence. */
    private readonly isAlive: (instance: string) => Promise<boolean>,
    private readonly stats: ClusterStats,
    /** How long an instance must stay silent (not listening, no presence) to be taken for dead: a presence lifetime. */
    private readonly deathMs: number,
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
    // A record naming this instance for a session that just moved away from it: its new home may not have
    // written its own yet.
    const home = record?.home === this.core.instanceId ? this.movedAway.get(sessionId) : record?.home;
    if (!record || !matches || !home || this.core.sessions.has(sessionId)) return this.local(state, hello);
    // The home answers with a handover (relay.ts calls `moved`), or takes the relayed socket.
    if (await this.relays.open(state, home, hello, message)) return;
    if (state.closing) return;
    // The home does not listen: dead, or cut off from the bus for a moment (a Redis restart can expire a live
    // instance's presence too). Only one that has stayed silent for a whole presence lifetime since it was
    // first found silent is taken for dead: taking a live instance's sessions would run calls twice.
    if (await this.isAlive(home)) {
      this.silent.delete(home);
      return this.core.closeSocket(state, CloseCode.TryAgainLater, "the instance holding this session is unreachable; try again");
    }
    const now = Date.now();
    const since = this.silent.get(home) ?? now;
    if (this.silent.size > 1000) this.silent.clear(); // Bounded: a forgotten one is only judged a little later.
    if (!this.silent.has(home)) this.silent.set(home, now);
    // One that left on purpose (server.close()) said so: no need to wait.
    const left = now - since >= this.deathMs || (await this.backend.get(leftKey(home))) !== undefined;
    if (state.closing) return;
    if (!left) {
      return this.core.closeSocket(state, CloseCode.TryAgainLater, "the instance holding this session is not answering; try again");
    }
    if (state.closing || !("data" in record)) return this.local(state, hello);
    const arrival: Arrival = {
      ...record,
      data: record.data,
      changes: null,
      changesFrom: 0,
      peer: null,
      callsLost: true,
      from: home,
    };
    await this.arrive(state, hello, arrival);
  }

  /** Handles the HELLO here, as on one instance (a fresh session unless the session is here). */
  private local(state: SocketState, hello: HelloFrame): void {
    if (state.closing) return;
    awaitHello(this.core, state); // handshake() takes a HELLO only while one is awaited
    handshake(this.core, state, hello);
  }

  /**
   * At the home, for a socket relayed from `to`: hands the session over if nothing is in flight. The session
   * stays here, frozen, until the handover is known to have been sent (`handedOver`).
   * @returns the handover; or null (the socket is relayed instead)
   */
  handOver(hello: HelloFrame, to: string): Uint8Array | null {
    const session = this.core.sessions.get(hello[3]);
    const peer = session && handover(session.peer);
    if (!session || !peer || session.ended || session.movedTo || session.catchUp?.busy) return null;
    // One that has not caught up since it arrived here hands on where its catch-up starts.
    const c = session.catchUp;
    const h: SessionHandover = {
      sessionId: session.sessionId,
      clientId: session.clientId,
      token: session.token,
      data: session.data,
      topics: c ? c.topics : [...topicsIn(session.topics)],
      changes: c ? c.changes : session.changes,
      changesFrom: c ? 0 : session.changesFrom,
      since: c ? c.after : session.since,
      epoch: c ? c.epoch : (this.log.epoch ?? ""),
      peer,
      callsLost: c?.callsLost ?? false,
    };
    let bytes: Uint8Array;
    try {
      bytes = encode(h);
    } catch {
      return null; // Its data cannot cross: it stays here, relayed.
    }
    session.movedTo = to;
    return bytes;
  }

  /** At the home: the handover was sent (the session goes, and sockets that still come here are sent after it), or not (it stays). */
  handedOver(hello: HelloFrame, sent: boolean): void {
    const session = this.core.sessions.get(hello[3]);
    if (!session?.movedTo) return;
    if (!sent) {
      session.movedTo = null;
      return;
    }
    this.movedAway.set(session.sessionId, session.movedTo);
    while (this.movedAway.size > MAX_MOVED_AWAY) this.movedAway.delete(this.movedAway.keys().next().value as string);
    this.core.endSession(session, CloseCode.Moved, `session moved to instance ${session.movedTo}`);
  }

  /**
   * At the home, for a socket relayed from `from`.
   * @returns what relay.ts answers it: a handover, true to relay, where the session moved on, "busy", or false
   */
  accept(hello: HelloFrame, from: string): Uint8Array | string | boolean {
    const session = this.core.sessions.get(hello[3]);
    if (!session) return this.movedAway.get(hello[3]) ?? false;
    if (!sameSecret(session.token, hello[4] as string)) return false;
    if (session.movedTo || session.catchUp?.busy) return "busy";
    const handover = this.handOver(hello, from);
    if (handover) return handover;
    this.stats.relayed++;
    return true;
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

  /**
   * Makes a session that moved or was taken over live here. It is registered and subscribed at once, so it
   * is never lost, whatever happens to this socket meanwhile: until it has caught up on the broadcasts it
   * missed (read back from the cluster's log), every resume of it catches up from the log (`resumeFromLog`).
   */
  private async arrive(state: SocketState, hello: HelloFrame, a: Arrival): Promise<void> {
    const sessionId = hello[3];
    const core = this.core;
    const after = Math.max(hello[5], a.since);
    // Before `changesFrom` its subscriptions are not known well enough to tell what it missed.
    if (after < a.changesFrom || core.sessions.has(sessionId)) return this.local(state, hello);
    const session = new Session(core, faceOf, a.clientId, sessionId, hello[4] as string, a.data, state.address);
    if (a.peer) takeOver(session.peer, a.peer);
    session.catchUp = { after, epoch: a.epoch, changes: a.changes, topics: a.topics, callsLost: a.callsLost, busy: false };
    core.sessions.set(sessionId, session);
    // Subscribed before the log is read, though not yet reachable: what this instance delivers meanwhile goes
    // into its own log for the session (nobody else here may be in those topics), and is caught up from there.
    for (const topic of a.topics) {
      try {
        core.topics.subscribe(session, topic);
      } catch (err) {
        core.report(err, session.connection as ServerConnection);
      }
    }
    this.records.changed(session);
    if (a.callsLost) this.stats.takenOver++;
    else this.stats.moved++;
    const how = a.callsLost ? "is taken over here after the death of" : "moves here from";
    core.log?.(`session ${sessionId} of client ${a.clientId} ${how} ${a.from}`);
    await this.catchUp(session, state, hello);
  }

  /** A HELLO resumes, here, a session that arrived from another instance and has not caught up yet. */
  resumeFromLog(session: Session, state: SocketState, hello: HelloFrame): void {
    if (session.catchUp?.busy) {
      return this.core.closeSocket(state, CloseCode.TryAgainLater, "the session is still arriving here; try again");
    }
    clearTimeout(session.expiry);
    this.core.unpark(session);
    this.catchUp(session, state, hello).catch((err: unknown) => this.core.report(err));
  }

  /** Reads what the session missed from the cluster's log, then puts it on this socket (or parks it, if the socket went). */
  private async catchUp(session: Session, state: SocketState, hello: HelloFrame): Promise<void> {
    const c = session.catchUp as NonNullable<Session["catchUp"]>;
    const core = this.core;
    const after = Math.max(hello[5], c.after);
    c.busy = true;
    let missed: Logged[] | null;
    try {
      missed = await this.log.since(after, c.epoch);
    } catch (err) {
      // The backend is away: keep the session; the client tries again.
      c.busy = false;
      if (!session.ended) core.park(session, state.address, CloseCode.TryAgainLater, "the cluster backend is unreachable");
      if (!state.closing) core.closeSocket(state, CloseCode.TryAgainLater, "the cluster backend is unreachable; try again");
      throw err;
    }
    c.busy = false;
    if (session.ended) return state.closing ? undefined : this.local(state, hello);
    const read = missed?.at(-1)?.seq ?? after;
    if (!missed || !core.topics.log.covers(session, read)) {
      // Broadcasts it needed are gone: it cannot go on. A fresh session; the client resets.
      core.endSession(session, CloseCode.Unresumable, "broadcasts it missed were lost by the cluster");
      return state.closing ? undefined : this.local(state, hello);
    }
    if (state.closing) return core.park(session, state.address, 1006, "its socket closed as it arrived");
    // bind, not a bare assignment: the socket may be relayed from another instance (its broadcasts then go one by one).
    bind(core, session, state);
    state.clientId = session.clientId;
    core.write(state, resumedWelcome(core, session, c.callsLost));
    // What it missed: from the cluster's log, as it was subscribed then, up to where that read ended (and no
    // further than this instance has delivered: the rest reaches it live); after that, from this instance's
    // own log, which has kept everything since the session was subscribed here.
    const upTo = Math.min(read, core.topics.log.seq);
    const then = { changes: c.changes, isSubscribed: (t: string) => c.topics.includes(t) };
    for (const { seq, broadcast: b } of missed) {
      if (seq > upTo || b.excludeSessions.includes(session.sessionId) || !b.topics.some((t) => wasSubscribed(then, t, seq))) continue;
      session.send(encodeFrame([FrameType.Event, seq, b.name, b.input]));
    }
    for (const frame of core.topics.log.missed(session, Math.max(upTo, after))) session.send(frame);
    session.catchUp = null;
    session.flush();
    core.topics.rejoin(session);
    session.peer.attach(session, !c.callsLost, hello[6]);
    core.hook(() => core.options.onResume?.(session.connection as ServerConnection), session);
  }
}
