/**
 * The answering half of the engine: runs incoming calls (dispatch,
 * validation, middleware, errors, the concurrency limit), keeps answers so a
 * repeat after a resume is answered without running the handler again, and
 * delivers broadcasts once each.
 */
import { ChatterError, describeThrown } from "../errors.ts";
import { type Proc, parse } from "../proc.ts";
import { type CallFrame, type EventFrame, encodeFrame, type Frame, FrameType } from "../wire/frames.ts";
import { CallContext } from "./context.ts";
import { wireError } from "./error-shape.ts";
import { runMiddleware } from "./middleware.ts";
import { ReplyCache } from "./replies.ts";
import { iteratorOf, misread, type StreamBudget, StreamWriter, type WriterHost } from "./stream-writer.ts";
import type { HandlerEntry, PeerHost, PeerOptions } from "./types.ts";

export class Answerer implements WriterHost {
  /** Incoming calls whose handler has not finished, for CANCEL and repeats. */
  private readonly running = new Map<number, CallContext>();
  /** Streams this end writes, until the reader has every item (made on the first). */
  private writers: Map<number, StreamWriter> | null = null;
  /** Made on the first answer: an idle session keeps none. */
  private replies: ReplyCache | null = null;
  /** The highest incoming call id so far; ids at or below it are repeats. */
  private lastCallId = 0;
  /** The highest EVENT sequence number so far; broadcasts at or below it are repeats. */
  lastEvent = 0;
  private readonly host: PeerHost;
  private readonly opts: PeerOptions;

  constructor(host: PeerHost) {
    this.host = host;
    this.opts = host.opts;
  }

  /** Sends a frame on the current socket, if any. */
  send(frame: Uint8Array): void {
    this.host.send(frame);
  }

  /** Incoming calls whose handler is still running. */
  get runningCount(): number {
    return this.running.size;
  }

  /** Answers kept for repeats. */
  get keptCount(): number {
    return this.replies?.size ?? 0;
  }

  /**
   * The caller has every answer below `id`. Comes with PING, PONG and resume
   * (CALLs trim the cache themselves): an idle session lets go of its empty cache.
   */
  forgetBelow(id: number): void {
    // A reader that settled a stream has every item: its writer can go.
    if (this.writers) {
      for (const [w, writer] of this.writers) {
        if (w >= id || this.running.has(w)) continue;
        this.writers.delete(w);
        writer.release();
      }
    }
    if (!this.replies) return;
    this.replies.forgetBelow(id);
    if (this.replies.size === 0) this.replies = null;
  }

  /** The caller gave up on a call: abort its handler, if it still runs; stop its stream's iterator. */
  cancel(id: number): void {
    const reason = new ChatterError("ABORTED", "the caller cancelled the call");
    const writer = this.writers?.get(id);
    if (!writer) return this.running.get(id)?.abort(reason);
    this.writers?.delete(id);
    writer.cancel(reason);
    if (this.running.delete(id)) this.opts.budget?.done(this.host.owner);
  }

  /** A reader's CREDIT: what it has and what it takes. */
  onCredit(id: number, received: number, limit: number): void {
    const writer = this.writers?.get(id);
    if (writer?.credit(received, limit)) {
      this.writers?.delete(id);
      writer.release();
    }
  }

  /** The session is gone: abort running handlers and forget everything (a new session starts from scratch). */
  reset(reason: string): void {
    const err = new ChatterError("DISCONNECTED", `caller went away (${reason})`);
    for (const [id, writer] of this.writers ?? []) {
      writer.cancel(err);
      if (this.running.delete(id)) this.opts.budget?.done(this.host.owner);
    }
    this.writers = null;
    for (const ctx of this.running.values()) ctx.abort(err);
    this.running.clear();
    this.replies?.clear(); // Gives its bytes back to a shared budget.
    this.replies = null;
    this.lastCallId = 0;
    this.lastEvent = 0;
  }

  /** An incoming CALL: dispatch it, or answer a repeat. */
  onCall(frame: CallFrame): void {
    const [, id, name, input, timeout, settledBelow] = frame;
    // Read only when present: reading past the end of a plain call's 6-element array is a slow path.
    const credit = frame.length > 6 ? frame[6] : undefined;
    this.replies?.forgetBelow(settledBelow);
    if (id <= this.lastCallId) return this.onRepeat(id, name);
    this.lastCallId = id;
    const entry = this.opts.handlers.get(name);
    if (!entry) {
      const err = new ChatterError("NOT_IMPLEMENTED", `"${name}" is not implemented on the ${this.opts.side}`);
      return this.replyError(id, err, new CallContext(name, timeout));
    }
    const max = this.opts.maxConcurrent;
    if (max !== undefined && this.running.size >= max) {
      const err = new ChatterError("LIMIT", `too many concurrent calls: "${name}" refused, limit is ${max}`);
      return this.replyError(id, err, new CallContext(name, timeout));
    }
    const budget = this.opts.budget;
    const refused = budget?.refuse(this.host.owner, name);
    if (refused) return this.replyError(id, refused, new CallContext(name, timeout));
    const ctx = new CallContext(name, timeout);
    if ((entry.proc.yields !== null) !== (credit !== undefined)) return this.replyError(id, misread(name, credit), ctx);
    let out: unknown;
    try {
      out = this.run(entry, input, ctx);
    } catch (err) {
      return this.replyError(id, err, ctx);
    }
    if (credit !== undefined) return this.write(id, entry.proc, out, ctx, credit);
    if (!(out instanceof Promise)) return this.reply(id, entry.proc, out, ctx);
    // It stays "running" until its answer is kept (see answer()), so a repeat arriving meanwhile waits for it.
    this.running.set(id, ctx);
    // Shared limits count the handler until it settles, even if its session ended meanwhile.
    budget?.started(this.host.owner);
    out.then(
      (value) => {
        budget?.done(this.host.owner);
        if (this.running.has(id)) this.reply(id, entry.proc, value, ctx);
      },
      (err) => {
        budget?.done(this.host.owner);
        if (this.running.has(id)) this.replyError(id, err, ctx);
      },
    );
  }

  /** Starts writing a stream: the handler's iterable (or a promise of one) is pulled as the reader grants credit. */
  private write(id: number, proc: Proc, out: unknown, ctx: CallContext, credit: number): void {
    this.running.set(id, ctx);
    this.opts.budget?.started(this.host.owner);
    const begin = (iterable: unknown) => {
      if (!this.running.has(id)) return; // The session ended while the handler's promise was pending.
      if (ctx.signal.aborted) {
        // Cancelled meanwhile: never start pulling; let a generator object that was made clean up.
        this.settleStream(id);
        this.running.delete(id);
        return void iteratorOf(iterable)?.return?.();
      }
      const iterator = iteratorOf(iterable);
      if (!iterator) {
        const what = iterable === null ? "null" : typeof iterable;
        return this.fail(
          id,
          new ChatterError("HANDLER_ERROR", `handler for stream "${proc.name}" returned ${what}, not an async iterable`),
          ctx,
        );
      }
      const writer = new StreamWriter(this, id, proc, iterator, ctx, credit);
      this.writers ??= new Map();
      this.writers.set(id, writer);
      writer.pump();
    };
    if (out instanceof Promise) out.then(begin, (err) => this.fail(id, err, ctx));
    else begin(out);
  }

  /** A stream's iterator is done (see WriterHost): END carries the item count, kept for repeats like any answer. */
  end(id: number, count: number, ctx: CallContext): void {
    if (this.settleStream(id)) this.answer(id, [FrameType.Result, id, count], ctx);
  }

  /** A stream failed (see WriterHost). */
  fail(id: number, err: unknown, ctx: CallContext): void {
    if (this.settleStream(id)) this.replyError(id, err, ctx);
  }

  /** @returns whether the stream was still running; it no longer counts against the shared limits */
  private settleStream(id: number): boolean {
    if (!this.running.has(id)) return false;
    this.opts.budget?.done(this.host.owner);
    return true;
  }

  /** The largest frame the other end takes. */
  get maxFrameBytes(): number {
    return this.host.maxFrameBytes;
  }

  /** The bound on stream items held, shared by every session of a server. */
  get streamBudget(): StreamBudget | undefined {
    return this.opts.streamBudget;
  }

  /** A call sent again after a resume: answer from the cache, or wait for the running handler. */
  private onRepeat(id: number, name: string): void {
    // A stream's reader resumed: its CREDIT, right behind this CALL, says where to go on from; a kept END or
    // ERROR goes again after the items it lacks, never before them.
    const writer = this.writers?.get(id);
    if (writer) {
      const last = this.replies?.get(id);
      return writer.pause(last ? () => this.send(last) : null);
    }
    const kept = this.replies?.get(id);
    if (kept) return this.send(kept);
    if (this.running.has(id)) return;
    // Neither kept nor running: the cache limit pushed the answer out.
    const err = new ChatterError("LIMIT", `the answer to call #${id} ("${name}") is no longer kept; it ran once`);
    this.send(encodeFrame([FrameType.Error, id, wireError(this.opts, this.host.owner, err, new CallContext(name, 0))]));
  }

  /**
   * Parses the input, then runs the middleware chain and the handler;
   * synchronous when the schema and handler are and there is no middleware.
   */
  private run(entry: HandlerEntry, input: unknown, ctx: CallContext): unknown {
    const parsed = parse(entry.proc.takes, input, entry.proc.name, "input");
    const handler = entry.handler as (input: unknown, owner: unknown, ctx: CallContext) => unknown;
    const chain = this.opts.middleware;
    if (chain !== undefined && chain.length > 0) {
      // Middleware sees parsed input: what it checks is what the handler gets.
      if (parsed instanceof Promise) return parsed.then((v) => runMiddleware(chain, v, this.host.owner, ctx, handler));
      return runMiddleware(chain, parsed, this.host.owner, ctx, handler);
    }
    if (parsed instanceof Promise) return parsed.then((v) => handler(v, this.host.owner, ctx));
    return handler(parsed, this.host.owner, ctx);
  }

  private reply(id: number, proc: Proc, value: unknown, ctx: CallContext): void {
    let checked: unknown;
    try {
      checked = parse(proc.returns, value, proc.name, "output");
    } catch (err) {
      return this.replyError(id, err, ctx);
    }
    const out = proc.returns === null ? null : value;
    if (checked instanceof Promise) {
      checked.then(
        () => this.answer(id, [FrameType.Result, id, out], ctx),
        (err) => this.replyError(id, err, ctx),
      );
    } else this.answer(id, [FrameType.Result, id, out], ctx);
  }

  private replyError(id: number, err: unknown, ctx: CallContext): void {
    this.answer(id, [FrameType.Error, id, wireError(this.opts, this.host.owner, err, ctx)], ctx);
  }

  /** Encodes an answer, keeps it for repeats, and sends it. */
  private answer(id: number, frame: Frame, ctx: CallContext): void {
    const name = ctx.proc;
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame(frame);
    } catch (err) {
      // A result that cannot travel is the handler's error; an error frame that cannot (formatError's issues) gets a plain one.
      if (frame[0] === FrameType.Result) {
        return this.replyError(id, new ChatterError("HANDLER_ERROR", `result of "${name}" cannot be encoded: ${describeThrown(err)}`), ctx);
      }
      bytes = encodeFrame([FrameType.Error, id, { code: "HANDLER_ERROR", message: `error of "${name}" cannot be encoded` }]);
    }
    const max = this.host.maxFrameBytes;
    if (bytes.byteLength > max) {
      const err = tooBig(name, bytes, max, frame[0] === FrameType.Result ? "result" : "error");
      if (frame[0] === FrameType.Result) return this.replyError(id, err, ctx);
      bytes = encodeFrame([FrameType.Error, id, err.toWire()]);
    }
    this.running.delete(id);
    this.replies ??= new ReplyCache(this.opts.replies);
    this.replies.set(id, bytes);
    this.send(bytes);
  }

  /** A broadcast delivery: like a call, but nobody waits for the result. Repeats are dropped. */
  onEvent([, seq, name, input]: EventFrame): void {
    // Seq 0 is a volatile broadcast: never logged nor replayed, so never a repeat, and it does not move lastEvent.
    if (seq !== 0) {
      if (seq <= this.lastEvent) return;
      this.lastEvent = seq;
    }
    const entry = this.opts.handlers.get(name);
    if (!entry) return this.opts.log?.(`broadcast of "${name}" ignored: no handler on the ${this.opts.side}`);
    const fail = (err: unknown) => this.opts.log?.(`handler for broadcast "${name}" failed: ${describeThrown(err)}`);
    try {
      const out = this.run(entry, input, new CallContext(name, 0));
      if (out instanceof Promise) out.catch(fail);
    } catch (err) {
      fail(err);
    }
  }
}

/** @returns the `LIMIT` error for a frame over the other end's `maxMessageBytes` */
export function tooBig(proc: string, frame: Uint8Array, max: number, what = "call"): ChatterError {
  return new ChatterError("LIMIT", `${what} of "${proc}" is ${frame.byteLength} bytes, over the other end's maxMessageBytes (${max})`);
}
