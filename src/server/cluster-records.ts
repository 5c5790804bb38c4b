/**
 * Session records: each session of a cluster keeps one in the backend's
 * key-value store, written by its home: who it is (client id, a hash of its
 * resume token, never the token), where it lives, its connection data and its
 * topics. Another instance routes a reconnecting client by it, and takes the
 * session over from it if the home died (cluster-sessions.ts).
 *
 * Records live `2 × resumeWindow` and are refreshed by their home, so a session outlives its home's death by
 * at least one resume window.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { unref } from "../engine/timers.ts";
import { ChatterError } from "../errors.ts";
import { encode } from "../wire/codec.ts";
import type { ClusterBackend } from "./cluster.ts";
import type { ClusterLog } from "./cluster-log.ts";
import type { ServerCore } from "./core.ts";
import type { Session } from "./session.ts";
import { topicsIn } from "./topic-list.ts";

/** A session's record in the backend (MessagePack). */
export interface SessionRecord {
  clientId: string;
  /** SHA-256 of the resume token, hex. */
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

/** A session's key in the backend. */
export const recordKey = (sessionId: string) => `session:${sessionId}`;

export class SessionRecords {
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
    private readonly ttlMs: number,
  ) {
    this.refresher = setInterval(() => this.refresh(), Math.max(1000, ttlMs / 4));
    unref(this.refresher);
  }

  /** A session began here, or its topics changed: its record is written soon. */
  changed(session: Session): void {
    // A session still arriving here (cluster-sessions.ts) is written once it is in.
    if (session.ended || this.core.sessions.get(session.sessionId) !== session) return;
    this.dirty.add(session);
    this.schedule();
  }

  /**
   * A session ended here: its record goes. Not on shutdown: the instance leaves (its presence with it), so
   * another takes its sessions over when their clients come back, as after a crash but with their topics
   * and data written out first (a rolling deploy loses no session).
   */
  gone(session: Session): void {
    this.dirty.delete(session);
    if (this.core.closing || session.movedTo) return; // Moved: its new home writes the record now.
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
      topics: [...topicsIn(s.topics)],
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
}

/** @returns the hash a record keeps in place of a resume token */
export function hashToken(token: string): string {
  let out = "";
  for (const byte of sha256(new TextEncoder().encode(token))) out += byte.toString(16).padStart(2, "0");
  return out;
}
