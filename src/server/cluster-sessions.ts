/**
 * Sessions across a cluster. Each session lives on one instance, its home,
 * and keeps a record in the backend's key-value store: who it is (client id,
 * a hash of its resume token, never the token), where it lives, its
 * connection data and its topics. A client that reconnects to another
 * instance is routed by that record:
 * - home alive: its socket is relayed there (relay.ts), and the home's engine resumes it as for any socket;
 * - home gone (its presence expired): the session is adopted here from the record: same id, data and
 *   topics, the broadcasts it missed read back from the cluster log. Calls in flight died with the old
 *   home; WELCOME says so and the client fails them with `DISCONNECTED` (they may have run, and never twice).
 * - no record, or a token that does not match: a fresh session, as on one instance.
 *
 * Records live `2 × resumeWindow` and are refreshed by their home, so a session outlives its home's death by
 * at least one resume window.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { unref } from "../engine/timers.ts";
import { ChatterError } from "../errors.ts";
import { decode, encode } from "../wire/codec.ts";
import { CloseCode, encodeFrame, FrameType, type HelloFrame, type WelcomeFrame } from "../wire/frames.ts";
import type { ClusterBackend } from "./cluster.ts";
import type { ClusterLog } from "./cluster-log.ts";
import { ServerConnection } from "./connection.ts";
import type { ServerCore } from "./core.ts";
import { handshake } from "./handshake.ts";
import { sameSecret } from "./identity.ts";
import { awaitHello } from "./intake.ts";
import type { Relays } from "./relay.ts";
import { Session } from "./session.ts";
import type { SocketState } from "./socket-state.ts";

/** A session's record in the backend (MessagePack). */
export interface SessionRecord {
  clientId: string;
  /** SHA-256 of the resume token, base64url. */
  tokenHash: string;
  /** The instance it lives on. */
  home: string;
  /** Its connection data, as MessagePack carries it; absent when it could not be encoded (the session cannot be adopted). */
  data?: unknown;
  topics: string[];
  /** The newest broadcast when it began, and the log epoch of that number. */
  since: number;
  epoch: string;
}

/**
 * Records written at most per batch, and how soon after a change: soon, since a session whose home dies
 * before its record is written cannot be taken over (it resets), yet late enough to batch a burst of connects.
 */
const BATCH = 500;
const FLUSH_MS = 2;

const recordKey = (sessionId: string) => `session:${sessionId}`;

export class ClusterSessions {
  /** Sessions here whose record must be written again (new, or their topics changed). */
  private readonly dirty = new Set<Session>();
  /** Records of sessions that ended here, to delete. */
  private readonly ended: string[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly refresher: ReturnType<typeof setInterval>;
  /** Sessions whose data could not be encoded, reported once each. */
  private warned = false;

  constructor(
    private readonly core: ServerCore,
    private readonly backend: ClusterBackend,
    private readonly log: ClusterLog,
    private readonly relays: Relays,
    /** Whether an instance is alive, by its presence. */
    private readonly isAlive: (instance: string) => Promise<boolean>,
    private readonly ttlMs: number,
  ) {
    this.refresher = setInterval(() => this.refresh(), Math.max(1000, ttlMs / 4));
    unref(this.refresher);
  }

  /** A session began here, or its topics changed: its record is written soon. */
  changed(session: Session): void {
    if (session.ended) return;
    this.dirty.add(session);
    this.schedule();
  }

  /**
   * A session ended here: its record goes. Not on shutdown: the instance leaves (its presence with it), so
   * another takes its sessions over when their clients come back, as after a crash but with their topics
   * and data written out first (a rolling deploy loses no session).
   */
  gone(session: Session): void {
    if (this.core.closing) return;
    this.dirty.delete(session);
    this.ended.push(recordKey(session.sessionId));
    this.schedule();
  }

  /** Writes the pending records now, once (the server is shutting down and its sessions are about to end). */
  async writeNow(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    while (this.dirty.size || this.ended.length) {
      const before = this.dirty.size + this.ended.length;
      await this.flush(false);
      if (this.dirty.size + this.ended.length >= before) return; // The backend is away: the records stay as they were.
    }
  }

  /** Stops writing records (the instance leaves); the records of its sessions expire on their own. */
  close(): void {
    clearInterval(this.refresher);
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  private schedule(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, FLUSH_MS);
    unref(this.flushTimer);
  }

  private async flush(retry = true): Promise<void> {
    const sessions = [...this.dirty].slice(0, BATCH);
    const ended = this.ended.splice(0, BATCH);
    for (const s of sessions) this.dirty.delete(s);
    try {
      if (ended.length) await this.backend.delete(ended);
      await Promise.all(sessions.map((s) => this.backend.put(recordKey(s.sessionId), this.record(s), this.ttlMs)));
    } catch (err) {
      // Written again once the backend is back (the relays and the log report the outage).
      for (const s of sessions) if (!s.ended) this.dirty.add(s);
      this.ended.push(...ended);
      if (!retry) return;
      this.core.log?.(`cluster: session records not written (${(err as Error).message}); retrying`);
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        void this.flush();
      }, 500);
      unref(this.flushTimer);
      return;
    }
    if (retry && (this.dirty.size || this.ended.length)) this.schedule();
  }

  private record(s: Session): Uint8Array {
    const base: SessionRecord = {
      clientId: s.clientId,
      tokenHash: hashToken(s.token),
      home: this.core.instanceId,
      topics: [...(s.topics ?? [])],
      since: s.since,
      epoch: this.log.epoch ?? "",
    };
    try {
      return encode({ ...base, data: s.data });
    } catch (err) {
      if (!this.warned) {
        this.warned = true;
        this.core.report(
          new ChatterError(
            "VALIDATION",
            `cluster: connection data of session ${s.sessionId} cannot cross the cluster (${(err as Error).message}); such sessions cannot resume on another instance if this one dies. Return plain data from getConnectionData.`,
          ),
        );
      }
      return encode(base);
    }
  }

  /** Keeps the records of every session here alive. */
  private refresh(): void {
    const keys = [...this.core.sessions.keys()].map(recordKey);
    for (let i = 0; i < keys.length; i += BATCH) {
      this.backend.touch(keys.slice(i, i + BATCH), this.ttlMs).catch(() => {});
    }
  }

  /**
   * Routes a socket whose HELLO names a session this instance does not have: to the session's home, into a
   * session adopted here, or to a fresh one.
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
    if (await this.relays.open(state, record.home, message)) return;
    if (state.closing) return;
    // The home does not listen: dead, or cut off from the bus for a moment. Only a dead one's sessions are taken.
    if (await this.isAlive(record.home)) {
      return this.core.closeSocket(state, CloseCode.TryAgainLater, "the instance holding this session is unreachable; try again");
    }
    if (state.closing) return;
    await this.adopt(state, hello, record);
  }

  /** Handles the HELLO here, as on one instance (a fresh session unless the session is here). */
  private local(state: SocketState, hello: HelloFrame): void {
    if (state.closing) return;
    awaitHello(this.core, state); // handshake() takes a HELLO only while one is awaited
    handshake(this.core, state, hello);
  }

  /** Takes over a session whose home died: from its record, with the broadcasts it missed read back from the log. */
  private async adopt(state: SocketState, hello: HelloFrame, record: SessionRecord): Promise<void> {
    const [, , , sessionId, token, lastEvent] = hello;
    const after = Math.max(lastEvent, record.since);
    const missed = "data" in record ? await this.log.since(after, record.epoch) : null;
    if (state.closing) return;
    if (!missed || this.core.sessions.has(sessionId)) return this.local(state, hello); // Cannot: a fresh session (the client resets).
    const core = this.core;
    const session = new Session(
      core,
      (s) => new ServerConnection(s),
      record.clientId,
      sessionId,
      token as string,
      record.data,
      state.address,
    );
    core.sessions.set(sessionId, session);
    core.connections.add(session.connection as ServerConnection);
    for (const topic of record.topics) {
      try {
        core.topics.subscribe(session, topic);
      } catch (err) {
        core.report(err, session.connection as ServerConnection);
      }
    }
    session.state = state;
    state.session = session;
    state.clientId = record.clientId;
    const welcome: WelcomeFrame = [FrameType.Welcome, sessionId, token as string, true, 0, core.maxMessageBytes];
    welcome.push(record.clientId, core.identity.sign(record.clientId), true);
    core.write(state, encodeFrame(welcome));
    // Only what this instance has delivered so far: newer ones reach the session live, now that it is subscribed.
    let caught = 0;
    for (const { seq, broadcast: b } of missed) {
      if (seq > core.topics.log.seq || b.excludeSessions.includes(sessionId)) continue;
      if (!b.topics.some((t) => record.topics.includes(t))) continue;
      session.send(encodeFrame([FrameType.Event, seq, b.name, b.input]));
      caught++;
    }
    session.flush();
    core.topics.rejoin(session);
    session.peer.attach(session, false);
    this.changed(session);
    core.log?.(
      `client ${record.clientId} resumed session ${sessionId} here after its instance ${record.home} died (${caught} broadcast(s) caught up; calls in flight lost)`,
    );
    core.hook(() => core.options.onResume?.(session.connection as ServerConnection), session);
  }
}

/** @returns the hash a record keeps in place of a resume token */
export function hashToken(token: string): string {
  let out = "";
  for (const byte of sha256(new TextEncoder().encode(token))) out += byte.toString(16).padStart(2, "0");
  return out;
}
