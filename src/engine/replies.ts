/**
 * Answers kept for repeats. After a resume the caller sends again every call
 * it has no answer for; the receiver answers a repeat from here instead of
 * running the handler twice. The caller tells, in each CALL and PING, the
 * lowest call id it still waits for, and everything below it is dropped.
 *
 * This runs for every answer, so the common case (keep one answer, drop it at
 * the next call) allocates nothing but the frame: answers sit in two arrays in
 * the order they were kept, and a lookup by call id, needed only for repeats,
 * builds an index the first time it is asked.
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
  /**
   * Every answer in the order it was kept, as its cache and its number there (see `ReplyCache.serial`), side
   * by side; entries whose answer is already gone are skipped.
   */
  private caches: ReplyCache[] = [];
  private serials: number[] = [];
  private head = 0;
  readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  /** @internal an answer was kept, numbered `serial` in its cache */
  add(cache: ReplyCache, serial: number, bytes: number): void {
    this.caches.push(cache);
    this.serials.push(serial);
    this.used += bytes;
    this.count++;
    while (this.used > this.max && this.head < this.caches.length) {
      const at = this.head++;
      (this.caches[at] as ReplyCache).forgetSerial(this.serials[at] as number);
    }
    // Drop entries for answers already gone once they are most of the queue.
    if (this.caches.length - this.head > 2 * this.count + 1024) this.compact();
  }

  /** @internal an answer was dropped */
  release(bytes: number): void {
    this.used -= bytes;
    this.count--;
  }

  private compact(): void {
    const caches: ReplyCache[] = [];
    const serials: number[] = [];
    for (let i = this.head; i < this.caches.length; i++) {
      const cache = this.caches[i] as ReplyCache;
      const serial = this.serials[i] as number;
      if (cache.holds(serial)) {
        caches.push(cache);
        serials.push(serial);
      }
    }
    this.caches = caches;
    this.serials = serials;
    this.head = 0;
  }
}

export class ReplyCache {
  /**
   * The answers in the order they were kept, a queue from `head`: call ids and frames side by side. A frame
   * dropped out of order (by the shared budget) leaves null. Each answer has a serial number, its place in
   * the order since the cache began; the one at index i is number `base + i`.
   */
  private ids: number[] = [];
  private frames: (Uint8Array | null)[] = [];
  private head = 0;
  private base = 0;
  private count = 0;
  private bytes = 0;
  /** Index in `frames` by call id: made on the first lookup by id, kept up to date while it lives. */
  private index: Map<number, number> | null = null;
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
    return this.count;
  }

  /** @returns the answers kept, oldest first (a session moving to another instance takes them along) */
  entries(): [id: number, frame: Uint8Array][] {
    const out: [number, Uint8Array][] = [];
    for (let i = this.head; i < this.frames.length; i++) {
      const frame = this.frames[i];
      if (frame) out.push([this.ids[i] as number, frame]);
    }
    return out;
  }

  get(id: number): Uint8Array | undefined {
    const at = this.find(id);
    return at < 0 ? undefined : (this.frames[at] as Uint8Array);
  }

  has(id: number): boolean {
    return this.find(id) >= 0;
  }

  /** @internal whether the answer numbered `serial` (see `frames`) is still kept: for the shared budget */
  holds(serial: number): boolean {
    const at = serial - this.base;
    return at >= this.head && at < this.frames.length && this.frames[at] !== null;
  }

  /** Keeps a right-sized copy of an answer (not a view pinning the encoder's buffer); see `keep`. */
  set(id: number, frame: Uint8Array): void {
    this.keep(id, copyBytes(frame));
  }

  /**
   * Keeps an answer; the oldest go first when a limit is passed.
   * @param own - bytes in a buffer of their own (encodeKeptFrame), kept as they are
   */
  keep(id: number, own: Uint8Array): void {
    // Bigger than this cache may hold: not kept (a repeat is answered LIMIT), and nothing else goes for it.
    if (own.byteLength > this.maxBytes || this.maxEntries < 1) return;
    const at = this.frames.length;
    this.ids.push(id);
    this.frames.push(own);
    this.index?.set(id, at);
    this.count++;
    this.bytes += own.byteLength;
    // Counted in the shared budget first, under its serial now: dropping the oldest below may compact the
    // queue (a new base). It drops older answers only: this one fits the cache's limits on its own.
    this.shared?.add(this, this.base + at, own.byteLength);
    while (this.count > this.maxEntries || this.bytes > this.maxBytes) this.dropOldest();
  }

  /** Drops one answer, wherever it is in the order. */
  forget(id: number): void {
    const at = this.find(id);
    if (at >= 0) this.drop(at);
  }

  /** @internal drops the answer numbered `serial`, if it is still kept: the shared budget is over */
  forgetSerial(serial: number): void {
    if (this.holds(serial)) this.drop(serial - this.base);
  }

  /**
   * Drops answers the caller has confirmed. Answers are kept in the order
   * they were made, which is nearly id order, so this stops at the first
   * one still needed; a straggler goes at a later call.
   */
  forgetBelow(id: number): void {
    // Slots of answers already dropped out of order are passed over too.
    while (this.head < this.ids.length && (this.frames[this.head] === null || (this.ids[this.head] as number) < id)) this.dropOldest();
  }

  clear(): void {
    for (let i = this.head; i < this.frames.length; i++) {
      const frame = this.frames[i];
      if (frame) this.shared?.release(frame.byteLength);
    }
    this.base += this.frames.length;
    this.ids = [];
    this.frames = [];
    this.head = 0;
    this.count = 0;
    this.bytes = 0;
    this.index = null;
  }

  /** @returns where the answer to call `id` is in `frames`, or -1 */
  private find(id: number): number {
    if (this.count === 0) return -1;
    if (!this.index) {
      this.index = new Map();
      for (let i = this.head; i < this.frames.length; i++) if (this.frames[i]) this.index.set(this.ids[i] as number, i);
    }
    return this.index.get(id) ?? -1;
  }

  private drop(at: number): void {
    const frame = this.frames[at] as Uint8Array;
    this.frames[at] = null;
    this.index?.delete(this.ids[at] as number);
    this.count--;
    this.bytes -= frame.byteLength;
    this.shared?.release(frame.byteLength);
  }

  private dropOldest(): void {
    const at = this.head++;
    if (this.frames[at]) this.drop(at);
    if (this.head === this.frames.length) {
      // Empty: start the arrays again in place (the usual case, one answer kept and dropped per call).
      this.base += this.head;
      this.ids.length = 0;
      this.frames.length = 0;
      this.head = 0;
      this.index = null;
    } else if (this.head > 1024 && this.head * 2 > this.frames.length) {
      // Compact now and then, so the queue does not grow with its dropped head.
      this.base += this.head;
      this.ids = this.ids.slice(this.head);
      this.frames = this.frames.slice(this.head);
      this.head = 0;
      this.index = null;
    }
  }
}
