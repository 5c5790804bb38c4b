/**
 * The reading end of a stream (PROTOCOL.md, "Streams"): what `stream()`
 * returns. It grants the writer credit for a window of items and grants more
 * as the loop takes them, so the writer never runs ahead of a slow reader. It
 * counts the items it has, so after a resume the writer goes on from the
 * first one it lacks; a repeat is dropped. Items are parsed by `yields` as the
 * loop takes them. Breaking out of the loop, `return()`, or aborting the
 * signal cancels the writer's iterator.
 */
import { ChatterError } from "../errors.ts";
import { type Proc, parse } from "../proc.ts";
import * as FrameType from "../wire/frame-type.ts";
import { encodeFrame } from "../wire/frames.ts";
import { aborted } from "./call-steps.ts";
import { unref } from "./timers.ts";
import { DEFAULT_TIMEOUT, type StreamOptions } from "./types.ts";

/** What a reader needs of the calling half (calls.ts). */
export interface ReaderHost {
  /** Sends the stream's CALL; resolves with the item count at its end, rejects with its error. */
  open(reader: StreamReader, proc: Proc, input: unknown, options: StreamOptions | undefined, window: number): Promise<unknown>;
  /** Sends a frame on the current socket, if any (a CREDIT lost with a socket is sent again on resume). */
  send(frame: Uint8Array): void;
  /** Gives up on the stream: the writer is told to stop, and `open`'s promise rejects with `err`. */
  cancel(reader: StreamReader, err: ChatterError): void;
}

type Waiter = { resolve: (r: IteratorResult<unknown>) => void; reject: (err: unknown) => void };

export class StreamReader implements AsyncIterableIterator<unknown> {
  /** The stream's call id, once its CALL is made. */
  id = 0;
  /** Items that arrived and the loop has not taken yet. */
  private queue: unknown[] = [];
  private head = 0;
  /** Items that arrived: the index the next one must have. */
  received = 0;
  /** `received` as the writer last heard it. */
  private acked = 0;
  private taken = 0;
  /** The writer may send items below this. */
  limit: number;
  /** The count the writer ended with, once its END arrived (items may still be on their way after a resume). */
  private endAt = -1;
  private outcome: { error: unknown } | { done: true } | null = null;
  private waiter: Waiter | null = null;
  private started = false;
  /** When the loop began waiting for an item with none queued (performance.now()), or 0. */
  private waitingSince = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Milliseconds the loop waits for each item; 0 for ever. Known once the call is made. */
  timeout = 0;

  constructor(
    private readonly host: ReaderHost,
    private readonly proc: Proc,
    private readonly input: unknown,
    private readonly options: StreamOptions | undefined,
    /** The credit granted at a time, checked already (streamWindow in stream-load.ts). */
    private readonly window: number,
  ) {
    this.limit = window;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<unknown>> {
    if (!this.started) this.start();
    // An aborted signal ends the loop at once, before the abort's own (asynchronous) rejection reaches here.
    const signal = this.options?.signal;
    if (signal?.aborted && !this.outcome) this.fail(aborted(this.proc.name, signal));
    if (this.head < this.queue.length) return this.take();
    if (this.outcome) return this.settled();
    if (this.waiter) {
      return Promise.reject(new ChatterError("PROTOCOL", `stream "${this.proc.name}": next() called again before the last one settled`));
    }
    // Waiting with items unacknowledged: say so, so a writer held back by its byte bound can go on.
    if (this.id !== 0 && this.received > this.acked) this.host.send(this.creditFrame());
    this.waitingSince = performance.now();
    this.arm();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Leaving the loop early (`break`, `return`, a throw in its body): the writer stops. */
  return(): Promise<IteratorResult<unknown>> {
    if (!this.outcome) {
      this.outcome = { done: true };
      if (this.started) this.host.cancel(this, new ChatterError("ABORTED", `stream "${this.proc.name}" was left by its reader`));
    }
    this.finish();
    return Promise.resolve({ done: true, value: undefined });
  }

  private start(): void {
    this.started = true;
    // Known now, so the first wait is bounded even while an async `takes` parses the input.
    const timeout = this.options?.timeout ?? this.proc.timeout ?? DEFAULT_TIMEOUT;
    this.timeout = timeout > 0 && Number.isFinite(timeout) ? timeout : 0;
    this.host.open(this, this.proc, this.input, this.options, this.window).then(
      () => this.end(),
      (err) => this.fail(err),
    );
  }

  /** An ITEM arrived. */
  onItem(index: number, item: unknown): void {
    // A repeat after a resume, a gap the resume fills, or past the credit granted (a writer that ignores it).
    if (index !== this.received || index >= this.limit || this.outcome) return;
    this.received++;
    this.queue.push(item);
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = null;
      this.take().then(waiter.resolve, waiter.reject);
    }
  }

  /** Whether the writer's END came and every item with it. */
  get complete(): boolean {
    return this.endAt >= 0 && this.received >= this.endAt;
  }

  /** The writer's END, with its item count; the stream is over once every item is here (see `complete`). */
  onEnd(count: unknown): void {
    this.endAt = typeof count === "number" && count >= 0 ? count : 0;
  }

  /** The frame that tells the writer what this end has and takes, sent with each grant and after a resume. */
  creditFrame(): Uint8Array {
    this.acked = this.received;
    return encodeFrame([FrameType.Credit, this.id, this.received, this.limit]);
  }

  private take(): Promise<IteratorResult<unknown>> {
    const item = this.queue[this.head];
    this.queue[this.head++] = undefined;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    this.taken++;
    this.waitingSince = 0;
    // Grant more once half the window is taken: one CREDIT per half window, not one per item.
    if (!this.outcome && this.limit - this.taken <= this.window / 2) {
      this.limit = this.taken + this.window;
      this.host.send(this.creditFrame());
    }
    try {
      const parsed = parse(this.proc.yields, item, this.proc.name, "output");
      if (parsed instanceof Promise)
        return parsed.then(
          (value) => ({ done: false, value }),
          (err) => this.broken(err),
        );
      return Promise.resolve({ done: false, value: parsed });
    } catch (err) {
      return this.broken(err);
    }
  }

  /** An item failed `yields`: the loop throws, and the writer stops. */
  private broken(err: unknown): Promise<never> {
    if (!this.outcome) {
      this.outcome = { error: err };
      this.host.cancel(this, err as ChatterError);
      this.finish();
    }
    return Promise.reject(err);
  }

  private settled(): Promise<IteratorResult<unknown>> {
    const outcome = this.outcome as { error: unknown } | { done: true };
    return "error" in outcome ? Promise.reject(outcome.error) : Promise.resolve({ done: true, value: undefined });
  }

  private end(): void {
    if (this.outcome) return;
    this.outcome = { done: true };
    this.finish();
  }

  /**
   * The stream failed (its error, a timeout, a lost session): items already here are still read first. An
   * aborted signal ends the loop at once, with the items here dropped.
   */
  fail(err: unknown): void {
    if (this.outcome) return;
    this.outcome = { error: err };
    if (err instanceof ChatterError && err.code === "ABORTED") {
      this.queue = [];
      this.head = 0;
    }
    this.finish();
  }

  private finish(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const waiter = this.waiter;
    if (!waiter || this.head < this.queue.length) return;
    this.waiter = null;
    this.settled().then(waiter.resolve, waiter.reject);
  }

  /** One timer per stream, re-armed only when it fires early: `timeout` bounds each wait for an item. */
  private arm(): void {
    if (this.timer || this.timeout <= 0 || !Number.isFinite(this.timeout)) return;
    this.timer = setTimeout(() => this.check(), this.timeout);
    unref(this.timer);
  }

  private check(): void {
    this.timer = undefined;
    if (!this.waiter || this.waitingSince === 0 || this.outcome) return;
    const left = this.waitingSince + this.timeout - performance.now();
    if (left > 1) {
      this.timer = setTimeout(() => this.check(), left);
      unref(this.timer);
      return;
    }
    const err = new ChatterError("TIMEOUT", `stream "${this.proc.name}" sent no item for ${this.timeout} ms`);
    this.host.cancel(this, err);
  }
}
