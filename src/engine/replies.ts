/**
 * Answers kept for repeats. After a resume the caller sends again every call
 * it has no answer for; the receiver answers a repeat from here instead of
 * running the handler twice. The caller tells, in each CALL and PING, the
 * lowest call id it still waits for, and everything below it is dropped.
 */
import { copyBytes } from "../wire/codec.ts";

export interface ReplyLimits {
  /** Answers kept at most. */
  maxEntries: number;
  /** Bytes of answers kept at most. */
  maxBytes: number;
  /** A byte budget shared with other caches (a server's sessions), if any. */
  shared?: SharedReplyBudget;
}

/**
 * One byte budget for the answers that many caches keep, so the total stays
 * bounded however many sessions (parked ones included) there are. Past it,
 * the oldest answers anywhere are dropped first; a repeat of one is then
 * answered `LIMIT` (it ran once).
 */
export class SharedReplyBudget {
  /** Bytes kept now, across every cache. */
  used = 0;
  /** Answers kept now, across every cache. */
  private count = 0;
  /** Every answer in the order it was kept; entries whose answer is already gone are skipped. */
  private order: { cache: ReplyCache; id: number }[] = [];
  private head = 0;
  readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  /** @internal an answer was kept */
  add(cache: ReplyCache, id: number, bytes: number): void {
    this.order.push({ cache, id });
    this.used += bytes;
    this.count++;
    while (this.used > this.max && this.head < this.order.length) {
      const oldest = this.order[this.head++] as { cache: ReplyCache; id: number };
      oldest.cache.forget(oldest.id);
    }
    // Drop entries for answers already gone once they are most of the queue.
    if (this.order.length - this.head > 2 * this.count + 1024) {
      this.order = this.order.slice(this.head).filter((e) => e.cache.has(e.id));
      this.head = 0;
    }
  }

  /** @internal an answer was dropped */
  release(bytes: number): void {
    this.used -= bytes;
    this.count--;
  }
}

export class ReplyCache {
  private readonly kept = new Map<number, Uint8Array>();
  /** The ids in the order they were kept: a queue, so the oldest is found without an iterator. */
  private order: number[] = [];
  private head = 0;
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly shared: SharedReplyBudget | undefined;

  /** @param limits - defaults: 10,000 answers and 8 MiB, and no shared budget */
  constructor(limits?: Partial<ReplyLimits>) {
    this.maxEntries = limits?.maxEntries ?? 10_000;
    this.maxBytes = limits?.maxBytes ?? 8 * 1024 * 1024;
    this.shared = limits?.shared;
  }

  get size(): number {
    return this.kept.size;
  }

  /** @returns the answers kept, oldest first (a session moving to another instance takes them along) */
  entries(): [id: number, frame: Uint8Array][] {
    const out: [number, Uint8Array][] = [];
    for (let i = this.head; i < this.order.length; i++) {
      const id = this.order[i] as number;
      const frame = this.kept.get(id);
      if (frame) out.push([id, frame]);
    }
    return out;
  }

  get(id: number): Uint8Array | undefined {
    return this.kept.get(id);
  }

  has(id: number): boolean {
    return this.kept.has(id);
  }

  /** Keeps an answer; the oldest go first when a limit is passed. */
  set(id: number, frame: Uint8Array): void {
    this.kept.set(id, copyBytes(frame));
    this.order.push(id);
    this.bytes += frame.byteLength;
    while (this.kept.size > this.maxEntries || this.bytes > this.maxBytes) this.dropOldest();
    this.shared?.add(this, id, frame.byteLength);
  }

  /** Drops one answer, wherever it is in the order (the shared budget is over). */
  forget(id: number): void {
    const frame = this.kept.get(id);
    if (!frame) return;
    this.kept.delete(id);
    this.bytes -= frame.byteLength;
    this.shared?.release(frame.byteLength);
  }

  /**
   * Drops answers the caller has confirmed. Answers are kept in the order
   * they were made, which is nearly id order, so this stops at the first
   * one still needed; a straggler goes at a later call.
   */
  forgetBelow(id: number): void {
    while (this.head < this.order.length && (this.order[this.head] as number) < id) this.dropOldest();
  }

  clear(): void {
    for (const frame of this.kept.values()) this.shared?.release(frame.byteLength);
    this.kept.clear();
    this.order = [];
    this.head = 0;
    this.bytes = 0;
  }

  private dropOldest(): void {
    const id = this.order[this.head++] as number;
    this.forget(id);
    // Compact now and then, so the queue does not grow with its dropped head.
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }
}
