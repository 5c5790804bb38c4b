/**
 * The answering half of the engine: runs incoming calls (dispatch,
 * validation, middleware, errors, the concurrency limit), keeps answers so a
 * repeat after a resume is answered without running the handler again, and
 * delivers broadcasts once each.
 */
import { ChatterError, describeThrown } from "../errors.ts";
import { type Proc, parse } from "../proc.ts";
import * as FrameType from "../wire/frame-type.ts";
import { type CallFrame, type EventFrame, encodeFrame, encodeKeptFrame, type Frame } from "../wire/frames.ts";
import { CallContext } from "./context.ts";
import { wireError } from "./error-shape.ts";
import { runMiddleware } from "./middleware.ts";
import { ReplyCache } from "./replies.ts";
import { misread, streamWriters, type Writers } from "./stream-load.ts";
import type { StreamBudget } from "./stream-writer.ts";
import type { WritersHost } from "./stream-writers.ts";
import type { CallBudget, HandlerEntry, PeerHost, PeerOptions } from "./types.ts";

export class Answerer implements WritersHost {
  /** Incoming calls whose handler has not finished, for CANCEL and repeats. */
  readonly running = new Map<number, CallContext>();
  /** Streams this end writes (made on the first; a stand-in while their code loads, see stream-load.ts). */
  writers: Writers | null = null;
  /** Made on the first answer: an idle session keeps none. handover.ts reads and fills it, with `lastCallId`. */
  replies: ReplyCache | null = null;
  /** The highest incoming call id so far; ids at or below it are repeats. */
  lastCallId = 0;
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
    this.writers?.forgetBelow(id);
    if (!this.replies) return;
    this.replies.forgetBelow(id);
    if (this.replies.size === 0) this.replies = null;
  }

  /** The caller gave up on a call: abort its handler, if it still runs; stop its stream's iterator. */
  cancel(id: number): void {
    const reason = new ChatterError("ABORTED", "the caller cancelled the call");
    if (!this.writers?.cancel(id, reason)) this.running.get(id)?.abort(reason);
  }

  /** A reader's CREDIT: what it has and what it takes. */
  onCredit(id: number, received: number, limit: number): void {
    this.writers?.credit(id, received, limit);
  }

  /** The session resumed: every stream waits for its reader's CREDIT (see StreamWriters.pauseAll). */
  resumed(): void {
    this.writers?.pauseAll();
  }

  /**
   * The session is gone: abort running handlers and forget everything (a new session starts from scratch).
   * @param keepEvents - keep the broadcast number: the session carries on, only its calls were lost
   */
  reset(reason: string, keepEvents = false): void {
    const err = new ChatterError("DISCONNECTED", `caller went away (${reason})`);
    this.writers?.reset(err);
    this.writers = null;
    for (const ctx of this.running.values()) ctx.abort(err);
    this.running.clear();
    this.replies?.clear(); // Gives its bytes back to a shared budget.
    this.replies = null;
    this.lastCallId = 0;
    if (!keepEvents) this.lastEvent = 0;
  }

  /** An incoming CALL: dispatch it, or answer a repeat. */
  onCall(frame: CallFrame): void {
    const [, id, name, input, timeout, settledBelow] = frame;
    // Read only when present: reading past the end of a plain call's 6-element array is a slow path.
    const credit = frame.length > 6 ? frame[6] : undefined;
    this.replies?.forgetBelow(settledBelow);
    this.writers?.forgetBelow(settledBelow);
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
    if (credit !== undefined) {
      this.writers ??= streamWriters(this, (real) => (this.writers = real));
      return this.writers.start(id, entry.proc, out, ctx, credit);
    }
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

  /** The largest frame the other end takes. */
  get maxFrameBytes(): number {
    return this.host.maxFrameBytes;
  }

  get owner(): unknown {
    return this.host.owner;
  }

  get budget(): CallBudget | undefined {
    return this.opts.budget;
  }

  /** The bound on stream items held, shared by every session of a server. */
  get streamBudget(): StreamBudget | undefined {
    return this.opts.streamBudget;
  }

  answerEnd(id: number, count: number, ctx: CallContext): Uint8Array | undefined {
    return this.answer(id, [FrameType.Result, id, count], ctx);
  }

  answerError(id: number, err: unknown, ctx: CallContext): Uint8Array | undefined {
    return this.answer(id, [FrameType.Error, id, wireError(this.opts, this.host.owner, err, ctx)], ctx);
  }

  /** A call sent again after a resume: answer from the cache, or wait for the running handler. */
  private onRepeat(id: number, name: string): void {
    // A stream's reader resumed: its CREDIT, right behind this CALL, says where to go on from; its END or
    // ERROR goes again after the items it lacks, never before them.
    if (this.writers?.repeat(id)) return;
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
    this.answerError(id, err, ctx);
  }

  /** Encodes an answer, keeps it for repeats, and sends it. @returns the frame sent */
  private answer(id: number, frame: Frame, ctx: CallContext): Uint8Array | undefined {
    const name = ctx.proc;
    let bytes: Uint8Array;
    try {
      bytes = encodeKeptFrame(frame);
    } catch (err) {
      // A result that cannot travel is the handler's error; an error frame that cannot (formatError's issues) gets a plain one.
      if (frame[0] === FrameType.Result) {
        return this.answerError(
          id,
          new ChatterError("HANDLER_ERROR", `result of "${name}" cannot be encoded: ${describeThrown(err)}`),
          ctx,
        );
      }
      bytes = encodeKeptFrame([FrameType.Error, id, { code: "HANDLER_ERROR", message: `error of "${name}" cannot be encoded` }]);
    }
    const max = this.host.maxFrameBytes;
    if (bytes.byteLength > max) {
      const err = tooBig(name, bytes, max, frame[0] === FrameType.Result ? "result" : "error");
      if (frame[0] === FrameType.Result) return this.answerError(id, err, ctx);
      bytes = encodeKeptFrame([FrameType.Error, id, err.toWire()]);
    }
    this.running.delete(id);
    this.replies ??= new ReplyCache(this.opts.replies);
    this.replies.keep(id, bytes);
    this.send(bytes);
    return bytes;
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
