/**
 * Recent broadcasts, kept so a session that resumes gets what it missed.
 * One log serves every session: a broadcast is kept once, not per
 * subscriber. A session can resume only if nothing it might need has been
 * dropped, so the limits here bound how long a client may be away.
 */
import { keep } from "../wire/codec.ts";

export interface LogLimits {
  /** Broadcasts kept at most (server-wide). */
  maxMessages: number;
  /** Bytes of broadcasts kept at most (server-wide). */
  maxBytes: number;
}

export interface LoggedBroadcast<C> {
  seq: number;
  topics: string[];
  exclude: ReadonlySet<C>;
  frame: Uint8Array;
}

/** What a session must remember of its subscription changes to judge old broadcasts: [seq, topic, joined]. */
export type SubscriptionChange = [seq: number, topic: string, joined: boolean];

/** What the log needs of a session. */
export interface Subscriber {
  isSubscribed(topic: string): boolean;
  /** Changes some kept broadcast may need, oldest first; null when there are none (most sessions). */
  changes: SubscriptionChange[] | null;
  /** Changes before this sequence number were forgotten. */
  changesFrom: number;
}

export class BroadcastLog<C extends Subscriber> {
  /** The sequence number of the newest broadcast. */
  seq = 0;
  /** Every broadcast up to this one has been dropped from the log. */
  private droppedThrough = 0;
  private entries: LoggedBroadcast<C>[] = [];
  private head = 0;
  private bytes = 0;
  private readonly limits: LogLimits;

  constructor(limits: LogLimits) {
    this.limits = limits;
  }

  /** @returns the sequence number given to the broadcast */
  append(topics: string[], exclude: ReadonlySet<C>, frame: Uint8Array): void {
    this.entries.push({ seq: this.seq, topics, exclude, frame: keep(frame) });
    this.bytes += frame.byteLength;
    while (this.entries.length - this.head > this.limits.maxMessages || this.bytes > this.limits.maxBytes) {
      const old = this.entries[this.head++] as LoggedBroadcast<C>;
      this.bytes -= old.frame.byteLength;
      this.droppedThrough = old.seq;
    }
    // Compact now and then, so the array does not grow with the dropped head.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Whether no broadcast is kept. */
  get isEmpty(): boolean {
    return this.head === this.entries.length;
  }

  /** Takes the next sequence number; the caller encodes it into the frame, then appends. */
  next(): number {
    return ++this.seq;
  }

  /** @returns whether everything after `lastSeen` that `who` could need is still here */
  covers(who: C, lastSeen: number): boolean {
    return lastSeen >= this.droppedThrough && lastSeen >= who.changesFrom;
  }

  /** @returns the frames after `lastSeen` that `who` should have had, oldest first */
  missed(who: C, lastSeen: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = this.head; i < this.entries.length; i++) {
      const b = this.entries[i] as LoggedBroadcast<C>;
      if (b.seq > lastSeen && !b.exclude.has(who) && b.topics.some((t) => wasSubscribed(who, t, b.seq))) out.push(b.frame);
    }
    return out;
  }

  /** Forgets subscription changes no kept broadcast can need: those made before the oldest one kept. */
  trim(who: C): void {
    const changes = who.changes;
    if (!changes) return;
    const keepFrom = this.isEmpty ? Number.POSITIVE_INFINITY : (this.entries[this.head] as LoggedBroadcast<C>).seq;
    let i = 0;
    while (i < changes.length && (changes[i] as SubscriptionChange)[0] < keepFrom) i++;
    if (i === changes.length) who.changes = null;
    else if (i) changes.splice(0, i);
  }
}

/** Was `who` subscribed to `topic` when broadcast `seq` went out? The first change at or after it tells. */
function wasSubscribed(who: Subscriber, topic: string, seq: number): boolean {
  for (const [at, t, joined] of who.changes ?? []) if (t === topic && at >= seq) return !joined;
  return who.isSubscribed(topic);
}
