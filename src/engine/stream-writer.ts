/**
 * The producing end of a stream (PROTOCOL.md, "Streams"). The handler's
 * iterator is pulled only while the reader has credit, so a slow reader
 * keeps this end's memory flat. Items sent but not yet acknowledged are kept
 * (at most about one window of them), so that after a dropped socket the
 * stream carries on from the first item the reader did not get: the handler
 * is never run again, and no item is lost or sent twice.
 */
import { ChatterError, describeThrown } from "../errors.ts";
import { type Proc, parse } from "../proc.ts";
import * as FrameType from "../wire/frame-type.ts";
import { encodeFrame } from "../wire/frames.ts";
import type { CallContext } from "./context.ts";

/** Items a reader may have outstanding at once, whatever credit it grants: a writer never holds more. */
export const MAX_WINDOW = 1024;
/** Bytes of unacknowledged items one writer holds before it waits for the reader (it may always hold one item). */
export const STREAM_KEPT_BYTES = 1024 * 1024;
/** Bytes of unacknowledged items all the streams of one session hold at most (past it, even a first item waits). */
export const SESSION_KEPT_BYTES = 8 * 1024 * 1024;

/** Bytes of unacknowledged items held by every writer of a server (or a client): shared, with its bound. */
export interface StreamBudget {
  used: number;
  readonly max: number;
}

/** What a writer needs of the answering half. */
export interface WriterHost {
  /** Sends a frame on the current socket, if there is one (frames sent with none are resent on resume). */
  send(frame: Uint8Array): void;
  /** The largest frame the other end takes. */
  readonly maxFrameBytes: number;
  /** The bound shared with the other writers of this server, if any. */
  readonly streamBudget: StreamBudget | undefined;
  /** The bound shared with the other writers of this session. */
  readonly sessionBudget: StreamBudget;
  /** The iterator is done after `count` items: answer with END (a RESULT of the count). @returns the frame sent */
  end(id: number, count: number, ctx: CallContext): Uint8Array | undefined;
  /** The iterator threw, or an item could not be sent: answer with ERROR. @returns the frame sent */
  fail(id: number, err: unknown, ctx: CallContext): Uint8Array | undefined;
}

export class StreamWriter {
  /** ITEM frames from index `base` on, sent or not, that the reader has not acknowledged. */
  private frames: Uint8Array[] = [];
  private base = 0;
  /** Their bytes. */
  private kept = 0;
  /** Items made so far: the next item's index. */
  private made = 0;
  /** Items below this went out on the current socket. */
  private sent = 0;
  /** The reader takes items below this. */
  private limit: number;
  private pulling = false;
  /** The iterator is done (or failed, or was stopped): nothing more is pulled. */
  private finished = false;
  /** After a resume, nothing goes out until the reader says what it has (its CREDIT). */
  private paused = false;
  /** A send of what was made is due (see flush). */
  private flushing = false;
  /** The END or ERROR held back while paused. */
  private closing: (() => void) | null = null;
  /** The END or ERROR once sent: sent again after a resume, after the items the reader lacks. */
  private final: Uint8Array | undefined = undefined;

  constructor(
    private readonly host: WriterHost,
    private readonly id: number,
    private readonly proc: Proc,
    private readonly iterator: AsyncIterator<unknown> | Iterator<unknown>,
    private readonly ctx: CallContext,
    credit: number,
  ) {
    this.limit = Math.min(credit, MAX_WINDOW);
  }

  /** Whether another item may be made now: within the reader's credit, and within the bytes this end may hold. */
  private get room(): boolean {
    if (this.made >= this.limit) return false;
    const session = this.host.sessionBudget;
    if (session.used >= session.max) return false;
    // One item, whatever the server-wide budget: so other sessions' slow readers cannot stop this one's streams.
    if (this.kept === 0) return true;
    const budget = this.host.streamBudget;
    return this.kept < STREAM_KEPT_BYTES && (!budget || budget.used < budget.max);
  }

  /** Counts bytes held (or, negative, let go) here and in the shared budget. */
  private hold(bytes: number): void {
    this.kept += bytes;
    this.host.sessionBudget.used += bytes;
    const budget = this.host.streamBudget;
    if (budget) budget.used += bytes;
  }

  /** Pulls the next item while there is credit; one pull at a time, so items keep their order. */
  pump(): void {
    if (this.pulling || this.finished || !this.room) return;
    this.pulling = true;
    let step: unknown;
    try {
      step = this.iterator.next();
    } catch (err) {
      return this.stop(err);
    }
    if (step instanceof Promise)
      step.then(
        (r) => this.onStep(r),
        (err) => this.stop(err),
      );
    else this.onStep(step as IteratorResult<unknown>);
  }

  private onStep(step: IteratorResult<unknown>): void {
    this.pulling = false;
    if (this.finished) return; // Cancelled while the iterator was busy.
    if (step.done) {
      this.finished = true;
      return this.last(() => {
        this.final = this.host.end(this.id, this.made, this.ctx);
      });
    }
    let parsed: unknown;
    try {
      parsed = parse(this.proc.yields, step.value, this.proc.name, "output");
    } catch (err) {
      return this.stop(err);
    }
    // The value sent is the handler's, not the parsed one: the reader parses it, so transforms run once.
    if (parsed instanceof Promise)
      parsed.then(
        () => this.push(step.value),
        (err) => this.stop(err),
      );
    else this.push(step.value);
  }

  private push(value: unknown): void {
    if (this.finished) return;
    let frame: Uint8Array;
    try {
      frame = encodeFrame([FrameType.Item, this.id, this.made, value]);
    } catch (err) {
      return this.stop(
        new ChatterError("HANDLER_ERROR", `item ${this.made} of "${this.proc.name}" cannot be encoded: ${describeThrown(err)}`),
      );
    }
    if (frame.byteLength > this.host.maxFrameBytes) {
      const why = `item ${this.made} of "${this.proc.name}" is ${frame.byteLength} bytes, over the other end's maxMessageBytes (${this.host.maxFrameBytes})`;
      return this.stop(new ChatterError("LIMIT", why));
    }
    this.frames.push(frame);
    this.hold(frame.byteLength);
    this.made++;
    this.flush();
    this.pump();
  }

  /**
   * Sends what the reader has not been sent on this socket, once the items an iterator makes without waiting
   * (each step is a microtask) are all made: they then go out together, batched into few messages, rather
   * than one message per item.
   */
  private flush(): void {
    if (this.paused || this.flushing) return;
    this.flushing = true;
    soon(() => this.sendNow());
  }

  /** Sends, now, every item made that this socket has not had; the END or ERROR that follows must not overtake them. */
  private sendNow(): void {
    this.flushing = false;
    if (this.paused) return;
    if (this.sent < this.base) this.sent = this.base;
    while (this.sent < this.made) this.host.send(this.frames[this.sent++ - this.base] as Uint8Array);
  }

  /**
   * The reader's CREDIT: it has every item below `received` and takes items below `limit`.
   * @returns whether the writer is spent (done, and every item acknowledged): it can be forgotten
   */
  credit(received: number, limit: number): boolean {
    // A reader cannot have an item not sent yet (items are made at once and sent on a later turn).
    const acked = Math.min(received, this.sent) - this.base;
    if (acked > 0) {
      let bytes = 0;
      for (let i = 0; i < acked; i++) bytes += (this.frames[i] as Uint8Array).byteLength;
      this.hold(-bytes);
      this.frames = this.frames.slice(acked);
      this.base += acked;
    }
    // A reader may not make this end hold more than MAX_WINDOW items, whatever it grants.
    const most = Math.min(limit, this.base + MAX_WINDOW);
    if (most > this.limit) this.limit = most;
    if (this.paused) {
      // The first CREDIT after a resume: go on from the first item the reader did not get.
      this.paused = false;
      this.sent = Math.max(this.base, Math.min(received, this.sent));
      const closing = this.closing;
      this.closing = null;
      if (closing) this.last(closing);
    }
    this.flush();
    this.pump();
    return this.finished && this.base === this.made;
  }

  /**
   * The session resumed on a new socket: wait for the reader's CREDIT to know where to go on from. An END or
   * ERROR already sent goes again after the items the reader lacks.
   */
  pause(): void {
    this.paused = true;
    const final = this.final;
    if (final) this.closing = () => this.host.send(final);
  }

  /** The reader gave up, or the session ended: stop pulling, and let the iterator clean up (`finally` blocks run). */
  cancel(reason: ChatterError): void {
    const done = this.finished && !this.pulling;
    this.finished = true;
    this.release();
    if (done) return;
    this.ctx.abort(reason);
    try {
      const out = this.iterator.return?.();
      if (out instanceof Promise) out.catch(() => {});
    } catch {
      // An iterator whose return() throws has still been told to stop.
    }
  }

  /** Lets go of every item held (the writer is being forgotten). */
  release(): void {
    this.hold(-this.kept);
    this.frames = [];
    // Nothing is left to send, whatever was due (a send scheduled before a CANCEL finds nothing).
    this.base = this.made;
    this.sent = this.made;
  }

  private stop(err: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.pulling = false;
    this.last(() => {
      this.final = this.host.fail(this.id, err, this.ctx);
    });
  }

  /** Sends the END or ERROR after every item made; while paused for a resume, once the reader's CREDIT comes. */
  private last(send: () => void): void {
    if (this.paused) {
      this.closing = send;
      return;
    }
    this.sendNow();
    send();
  }
}

/** @returns the iterator of an async or sync iterable, or null for anything else */
export function iteratorOf(value: unknown): AsyncIterator<unknown> | Iterator<unknown> | null {
  if (value === null || typeof value !== "object") return null;
  const source = value as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
  const asyncIterator = source[Symbol.asyncIterator];
  if (typeof asyncIterator === "function") return asyncIterator.call(value);
  const iterator = source[Symbol.iterator];
  return typeof iterator === "function" ? iterator.call(value) : null;
}

/**
 * Runs `fn` on a later turn of the event loop, once the microtasks queued now have run: `setImmediate` where
 * the runtime has it (Bun, Node, Deno), else a MessageChannel (browsers; unlike `setTimeout(0)`, never clamped
 * to 4 ms). Chosen on first use; it lives here, with its one user, so the stream code's chunk carries it.
 */
function soon(fn: () => void): void {
  later ??= pickLater();
  later(fn);
}

let later: ((fn: () => void) => void) | null = null;

function pickLater(): (fn: () => void) => void {
  const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
  if (typeof immediate === "function") return (fn) => void immediate(fn);
  if (typeof MessageChannel === "function") {
    const waiting: (() => void)[] = [];
    const channel = new MessageChannel();
    channel.port1.onmessage = () => waiting.shift()?.();
    return (fn) => {
      waiting.push(fn);
      channel.port2.postMessage(null);
    };
  }
  return (fn) => void setTimeout(fn, 0);
}
