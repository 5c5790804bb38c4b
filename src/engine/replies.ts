/**
 * Answers kept for repeats. After a resume the caller sends again every call
 * it has no answer for; the receiver answers a repeat from here instead of
 * running the handler twice. The caller tells, in each CALL and PING, the
 * lowest call id it still waits for, and everything below it is dropped.
 */
export interface ReplyLimits {
  /** Answers kept at most. */
  maxEntries: number;
  /** Bytes of answers kept at most. */
  maxBytes: number;
}

export class ReplyCache {
  private readonly kept = new Map<number, Uint8Array>();
  private bytes = 0;
  private readonly limits: ReplyLimits;

  constructor(limits: ReplyLimits) {
    this.limits = limits;
  }

  get size(): number {
    return this.kept.size;
  }

  get(id: number): Uint8Array | undefined {
    return this.kept.get(id);
  }

  /** Keeps an answer; the oldest go first when a limit is passed. */
  set(id: number, frame: Uint8Array): void {
    this.kept.set(id, frame);
    this.bytes += frame.byteLength;
    while (this.kept.size > this.limits.maxEntries || this.bytes > this.limits.maxBytes) {
      const [oldest, bytes] = this.kept.entries().next().value as [number, Uint8Array];
      this.drop(oldest, bytes);
    }
  }

  /**
   * Drops answers the caller has confirmed. Answers are kept in the order
   * they were made, which is nearly id order, so this stops at the first
   * one still needed; a straggler goes at a later call.
   */
  settledBelow(id: number): void {
    for (const [key, frame] of this.kept) {
      if (key >= id) return;
      this.drop(key, frame);
    }
  }

  clear(): void {
    this.kept.clear();
    this.bytes = 0;
  }

  private drop(id: number, frame: Uint8Array): void {
    this.kept.delete(id);
    this.bytes -= frame.byteLength;
  }
}
