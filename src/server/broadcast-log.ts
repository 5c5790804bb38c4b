/**
 * Recent broadcasts, kept so a session that resumes gets what it missed.
 * One log serves every session: a broadcast is kept once, not per
 * subscriber. A session can resume only if nothing it might need has been
 * dropped, so the limits here bound how long a client may be away.
 */
import { copyBytes } from "../wire/codec.ts";
import { type TopicList, topicsIn } from "./topic-list.ts";

export interface LogLimits {
  /** Broadcasts kept at most (server-wide). */
  maxMessages: number;
  /** Bytes of broadcasts kept at most (server-wide). */
  maxBytes: number;
}

export interface LoggedBroadcast {
  seq: number;
  topics: string[];
  /** The session ids left out, or null: ids rather than sessions, so an ended session is not kept alive here. */
  exclude: ReadonlySet<string> | null;
  frame: Uint8Array;
}

/** Topics whose newest dropped broadcast is remembered; older ones count as dropped at `evictedThrough`. */
const MAX_DROPPED_TOPICS = 10_000;

/** What a session must remember of its subscription changes to judge old broadcasts: [seq, topic, joined]. */
export type SubscriptionChange = [seq: number, topic: string, joined: boolean];

/** What the log needs of a session. */
export interface Subscriber {
  readonly sessionId: string;
  /** The newest broadcast sequence number when the session began: it needs nothing older. */
  readonly since: number;
  /** The topics it is in now, or null when none. */
  topics: TopicList | null;
  isSubscribed(topic: string): boolean;
  /** Changes some kept broadcast may need, oldest first; null when there are none (most sessions). */
  changes: SubscriptionChange[] | null;
  /** Changes before this sequence number were forgotten: the session cannot tell what it needed before it. */
  changesFrom: number;
}

export class BroadcastLog<C extends Subscriber> {
  /** The sequence number of the newest broadcast. */
  seq = 0;
  /** Every broadcast up to this one has been dropped from the log. */
  private droppedThrough = 0;
  private entries: LoggedBroadcast[] = [];
  /** Per topic, the newest broadcast on it that was dropped (least recently dropped first). */
  private readonly droppedOn = new Map<string, number>();
  /** Topics pushed out of `droppedOn` count as dropped up to here. */
  private evictedThrough = 0;
  private head = 0;
  private bytes = 0;
  private readonly limits: LogLimits;

  constructor(limits: LogLimits) {
    this.limits = limits;
  }

  /** @returns the sequence number given to the broadcast */
  append(topics: string[], exclude: ReadonlySet<C>, frame: Uint8Array): void {
    const ids = exclude.size ? new Set(Array.from(exclude, (c) => c.sessionId)) : null;
    this.entries.push({ seq: this.seq, topics, exclude: ids, frame: copyBytes(frame) });
    this.bytes += frame.byteLength;
    while (this.entries.length - this.head > this.limits.maxMessages || this.bytes > this.limits.maxBytes) {
      this.drop(this.entries[this.head++] as LoggedBroadcast);
    }
    // Compact now and then, so the array does not grow with the dropped head.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Notes a broadcast leaving the log, per topic, so sessions that never needed it can still resume. */
  private drop(old: LoggedBroadcast): void {
    this.bytes -= old.frame.byteLength;
    this.droppedThrough = old.seq;
    for (const topic of old.topics) {
      this.droppedOn.delete(topic);
      this.droppedOn.set(topic, old.seq);
    }
    while (this.droppedOn.size > MAX_DROPPED_TOPICS) {
      const [topic, seq] = this.droppedOn.entries().next().value as [string, number];
      this.droppedOn.delete(topic);
      this.evictedThrough = Math.max(this.evictedThrough, seq);
    }
  }

  /** @returns the newest dropped broadcast on `topic` (an upper bound once forgotten) */
  private droppedSeq(topic: string): number {
    return this.droppedOn.get(topic) ?? this.evictedThrough;
  }

  /** Whether no broadcast is kept. */
  get isEmpty(): boolean {
    return this.head === this.entries.length;
  }

  /** Takes the next sequence number; the caller encodes it into the frame, then appends. */
  next(): number {
    return ++this.seq;
  }

  /**
   * Whether everything after `lastSeen` that `who` could need is still here.
   * Only broadcasts on topics it was in can be needed: a session that makes
   * calls only, or listens to quiet topics, resumes however busy others are.
   */
  covers(who: C, lastSeen: number): boolean {
    const from = Math.max(lastSeen, who.since);
    if (from < who.changesFrom) return false;
    if (from >= this.droppedThrough) return true;
    for (const topic of topicsIn(who.topics)) if (this.droppedSeq(topic) > from) return false;
    for (const [, topic] of who.changes ?? []) if (this.droppedSeq(topic) > from) return false;
    return true;
  }

  /** @returns the frames after `lastSeen` (and after the session began) that `who` should have had, oldest first */
  missed(who: C, lastSeen: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    // Nothing from before the session began: its subscription changes from then are not kept (Topics.remember).
    const from = Math.max(lastSeen, who.since);
    for (let i = this.head; i < this.entries.length; i++) {
      const b = this.entries[i] as LoggedBroadcast;
      if (b.seq > from && !b.exclude?.has(who.sessionId) && b.topics.some((t) => wasSubscribed(who, t, b.seq))) out.push(b.frame);
    }
    return out;
  }

  /**
   * Forgets subscription changes no kept broadcast can need: those made
   * before the oldest one kept. A forgotten leave hides a topic the session
   * was in, so from then on it resumes only from after that change.
   */
  trim(who: C): void {
    const changes = who.changes;
    if (!changes) return;
    const keepFrom = this.isEmpty ? Number.POSITIVE_INFINITY : (this.entries[this.head] as LoggedBroadcast).seq;
    let i = 0;
    for (; i < changes.length && (changes[i] as SubscriptionChange)[0] < keepFrom; i++) {
      const [at, , joined] = changes[i] as SubscriptionChange;
      if (!joined && at > who.changesFrom) who.changesFrom = at;
    }
    if (i === changes.length) who.changes = null;
    else if (i) changes.splice(0, i);
  }
}

/** Was `who` subscribed to `topic` when broadcast `seq` went out? The first change at or after it tells. */
export function wasSubscribed(who: Pick<Subscriber, "changes" | "isSubscribed">, topic: string, seq: number): boolean {
  for (const [at, t, joined] of who.changes ?? []) if (t === topic && at >= seq) return !joined;
  return who.isSubscribed(topic);
}
