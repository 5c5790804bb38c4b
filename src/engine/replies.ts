/**
 * Answers kept for repeats. After a resume the caller sends again every call
 * it has no answer for; the receiver answers a repeat from here instead of
 * running the handler twice. The caller tells, in each CALL and PING, the
 * lowest call id it still waits for, and everything below it is dropped.
 */
import { keep } from "../wire/codec.ts";

export interface ReplyLimits {
  /** Answers kept at most. */
  maxEntries: number;
  /** Bytes of answers kept at most. */
  maxBytes: number;
}

export class ReplyCache {
  private readonly kept = new Map<number, Uint8Array>();
  /** The ids in the order they were kept: a queue, so the oldest is found without an iterator. */
  private order: number[] = [];
  private head = 0;
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;

  /** @param limits - defaults: 10,000 answers and 8 MiB */
  constructor(limits?: Partial<ReplyLimits>) {
    this.maxEntries = limits?.maxEntries ?? 10_000;
    this.maxBytes = limits?.maxBytes ?? 8 * 1024 * 1024;
  }

  get size(): number {
    return this.kept.size;
  }

  get(id: number): Uint8Array | undefined {
    return this.kept.get(id);
  }

  /** Keeps an answer; the oldest go first when a limit is passed. */
  set(id: number, frame: Uint8Array): void {
    this.kept.set(id, keep(frame));
    this.order.push(id);
    this.bytes += frame.byteLength;
    while (this.kept.size > this.maxEntries || this.bytes > this.maxBytes) this.dropOldest();
  }

  /**
   * Drops answers the caller has confirmed. Answers are kept in the order
   * they were made, which is nearly id order, so this stops at the first
   * one still needed; a straggler goes at a later call.
   */
  settledBelow(id: number): void {
    while (this.head < this.order.length && (this.order[this.head] as number) < id) this.dropOldest();
  }

  clear(): void {
    this.kept.clear();
    this.order = [];
    this.head = 0;
    this.bytes = 0;
  }

  private dropOldest(): void {
    const id = this.order[this.head++] as number;
    const frame = this.kept.get(id);
    if (frame) {
      this.kept.delete(id);
      this.bytes -= frame.byteLength;
    }
    // Compact now and then, so the queue does not grow with its dropped head.
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }
}
