/**
 * The streams one end writes (stream-writer.ts is one of them), kept apart
 * from the answering half (answers.ts) that starts them. Each stream counts
 * against the shared handler limits exactly once, from its CALL until it
 * ends, fails, is cancelled or its session is gone, whatever order those
 * come in. A writer whose stream has ended stays until its reader has every
 * item, but a session keeps only a few of those, and its writers together
 * hold at most SESSION_KEPT_BYTES.
 */
import { ChatterError } from "../errors.ts";
import type { Proc } from "../proc.ts";
import type { CallContext } from "./context.ts";
import { iteratorOf, SESSION_KEPT_BYTES, type StreamBudget, StreamWriter, type WriterHost } from "./stream-writer.ts";
import type { CallBudget } from "./types.ts";

/** Writers of ended streams a session keeps for their readers; past it the oldest goes (a repeat then gets its END alone). */
const MAX_ENDED = 16;

/** What the writers need of the answering half. */
export interface WritersHost {
  /** Incoming calls whose handler runs (a stream runs until its END or ERROR). */
  readonly running: Map<number, CallContext>;
  readonly owner: unknown;
  readonly budget: CallBudget | undefined;
  readonly streamBudget: StreamBudget | undefined;
  readonly maxFrameBytes: number;
  send(frame: Uint8Array): void;
  /** Answers with END (a RESULT of the count) or ERROR, kept for repeats. @returns the frame sent */
  answerEnd(id: number, count: number, ctx: CallContext): Uint8Array | undefined;
  answerError(id: number, err: unknown, ctx: CallContext): Uint8Array | undefined;
}

export class StreamWriters implements WriterHost {
  private readonly writers = new Map<number, StreamWriter>();
  /** Streams counted against the shared handler limits. */
  private readonly counted = new Set<number>();
  /** Bytes of unacknowledged items all these writers hold (see SESSION_KEPT_BYTES). */
  readonly sessionBudget: StreamBudget = { used: 0, max: SESSION_KEPT_BYTES };

  constructor(private readonly host: WritersHost) {}

  /** Writers open or kept for a resend. */
  get size(): number {
    return this.writers.size;
  }

  get maxFrameBytes(): number {
    return this.host.maxFrameBytes;
  }

  get streamBudget(): StreamBudget | undefined {
    return this.host.streamBudget;
  }

  send(frame: Uint8Array): void {
    this.host.send(frame);
  }

  /** Starts writing a stream: the handler's iterable (or a promise of one) is pulled as the reader grants credit. */
  start(id: number, proc: Proc, out: unknown, ctx: CallContext, credit: number): void {
    this.host.running.set(id, ctx);
    this.counted.add(id);
    this.host.budget?.started(this.host.owner);
    const begin = (iterable: unknown) => {
      if (!this.host.running.has(id)) return; // The session ended while the handler's promise was pending.
      try {
        if (ctx.signal.aborted) return this.abandon(id, iterable); // Cancelled meanwhile: never start pulling.
        const iterator = iteratorOf(iterable);
        if (!iterator) {
          const what = iterable === null ? "null" : typeof iterable;
          const err = new ChatterError("HANDLER_ERROR", `handler for stream "${proc.name}" returned ${what}, not an async iterable`);
          return void this.fail(id, err, ctx);
        }
        this.evictEnded();
        const writer = new StreamWriter(this, id, proc, iterator, ctx, credit);
        this.writers.set(id, writer);
        writer.pump();
      } catch (err) {
        this.fail(id, err, ctx);
      }
    };
    if (out instanceof Promise) out.then(begin, (err) => this.fail(id, err, ctx));
    else begin(out);
  }

  /** A stream's iterator is done (see WriterHost). @returns the END sent */
  end(id: number, count: number, ctx: CallContext): Uint8Array | undefined {
    if (!this.host.running.has(id)) return undefined;
    this.uncount(id);
    return this.host.answerEnd(id, count, ctx);
  }

  /** A stream failed (see WriterHost). @returns the ERROR sent */
  fail(id: number, err: unknown, ctx: CallContext): Uint8Array | undefined {
    if (!this.host.running.has(id)) return undefined;
    this.uncount(id);
    return this.host.answerError(id, err, ctx);
  }

  /** Whether a stream of this id is written here (so a repeat of its CALL is a resume, not a call). */
  has(id: number): boolean {
    return this.writers.has(id);
  }

  /** The reader cancelled: stop the iterator. @returns whether `id` was a stream written here */
  cancel(id: number, reason: ChatterError): boolean {
    const writer = this.writers.get(id);
    if (!writer) return false;
    this.writers.delete(id);
    writer.cancel(reason);
    this.host.running.delete(id);
    this.uncount(id);
    return true;
  }

  /** A reader's CREDIT: what it has and what it takes. */
  credit(id: number, received: number, limit: number): void {
    const writer = this.writers.get(id);
    if (writer?.credit(received, limit)) this.forget(id, writer);
  }

  /** The reader's CALL came again after a resume: wait for its CREDIT to know where to go on from. */
  repeat(id: number): boolean {
    const writer = this.writers.get(id);
    writer?.pause();
    return writer !== undefined;
  }

  /** The session resumed on a new socket: every writer waits for its reader's CREDIT before it sends again. */
  pauseAll(): void {
    for (const writer of this.writers.values()) writer.pause();
  }

  /** The reader has settled every stream below `id`: their writers can go. */
  forgetBelow(id: number): void {
    for (const [w, writer] of this.writers) if (w < id && !this.host.running.has(w)) this.forget(w, writer);
  }

  /** The session is gone: stop every iterator, and un-count every stream, started or not. */
  reset(err: ChatterError): void {
    for (const writer of this.writers.values()) writer.cancel(err);
    this.writers.clear();
    for (let n = this.counted.size; n > 0; n--) this.host.budget?.done(this.host.owner);
    this.counted.clear();
  }

  private forget(id: number, writer: StreamWriter): void {
    this.writers.delete(id);
    writer.release();
  }

  private uncount(id: number): void {
    if (this.counted.delete(id)) this.host.budget?.done(this.host.owner);
  }

  /** A stream cancelled before its handler's promise settled: let a generator object that was made clean up. */
  private abandon(id: number, iterable: unknown): void {
    this.host.running.delete(id);
    this.uncount(id);
    const out = iteratorOf(iterable)?.return?.();
    if (out instanceof Promise) out.catch(() => {});
  }

  /** Keeps at most MAX_ENDED writers whose stream has ended, oldest first out. */
  private evictEnded(): void {
    let ended = 0;
    for (const id of this.writers.keys()) if (!this.host.running.has(id)) ended++;
    for (const [id, writer] of this.writers) {
      if (ended < MAX_ENDED) return;
      if (this.host.running.has(id)) continue;
      this.forget(id, writer);
      ended--;
    }
  }
}
