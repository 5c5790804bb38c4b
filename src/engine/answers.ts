/**
 * The answering half of the engine: runs incoming calls (dispatch,
 * validation, errors, the concurrency limit), keeps answers so a repeat after
 * a resume is answered without running the handler again, and delivers
 * broadcasts once each.
 */
import { ChatterError, describeThrown, toWireError } from "../errors.ts";
import { check, type Proc } from "../proc.ts";
import { type CallFrame, type EventFrame, encodeFrame, type Frame, FrameType } from "../wire/frames.ts";
import { CallContext } from "./context.ts";
import type { HandlerEntry, PeerOptions } from "./peer.ts";
import { ReplyCache } from "./replies.ts";

/** What the answering half needs of its peer. */
export interface AnswererHost {
  readonly opts: PeerOptions;
  /** Passed to handlers as their second argument. */
  readonly owner: unknown;
  /** The largest frame the other end accepts. */
  readonly maxFrameBytes: number;
  /** Sends a frame on the current link, if any. */
  send(frame: Uint8Array): void;
}

/** Handler limits shared by many peers: checked before a handler runs, counted while an async one is running. */
export interface CallBudget {
  /** @returns the error that refuses a call from `owner` now, or null */
  refuse(owner: unknown, proc: string): ChatterError | null;
  started(owner: unknown): void;
  done(owner: unknown): void;
}

export class Answerer {
  /** Incoming calls whose handler has not finished, for CANCEL and repeats. */
  private readonly running = new Map<number, CallContext>();
  /** Made on the first answer: an idle session keeps none. */
  private replies: ReplyCache | null = null;
  /** The highest incoming call id so far; ids at or below it are repeats. */
  private lastCallId = 0;
  /** The highest EVENT sequence number so far; broadcasts at or below it are repeats. */
  lastEvent = 0;
  private readonly host: AnswererHost;
  private readonly opts: PeerOptions;

  constructor(host: AnswererHost) {
    this.host = host;
    this.opts = host.opts;
  }

  private send(frame: Uint8Array): void {
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
  settledBelow(id: number): void {
    if (!this.replies) return;
    this.replies.settledBelow(id);
    if (this.replies.size === 0) this.replies = null;
  }

  /** The caller gave up on a call: abort its handler, if it still runs. */
  cancel(id: number): void {
    this.running.get(id)?.abort(new ChatterError("ABORTED", "the caller cancelled the call"));
  }

  /** The session is gone: abort running handlers and forget everything (a new session starts from scratch). */
  reset(reason: string): void {
    for (const ctx of this.running.values()) ctx.abort(new ChatterError("DISCONNECTED", `caller went away (${reason})`));
    this.running.clear();
    this.replies?.clear(); // Gives its bytes back to a shared budget.
    this.replies = null;
    this.lastCallId = 0;
    this.lastEvent = 0;
  }

  /** An incoming CALL: dispatch it, or answer a repeat. */
  onCall([, id, name, input, timeout, settledBelow]: CallFrame): void {
    this.replies?.settledBelow(settledBelow);
    if (id <= this.lastCallId) return this.onRepeat(id, name);
    this.lastCallId = id;
    const entry = this.opts.handlers.get(name);
    if (!entry) {
      return this.replyError(id, new ChatterError("NOT_IMPLEMENTED", `"${name}" is not implemented on the ${this.opts.side}`), name);
    }
    const max = this.opts.maxConcurrent;
    if (max !== undefined && this.running.size >= max) {
      return this.replyError(id, new ChatterError("LIMIT", `too many concurrent calls: "${name}" refused, limit is ${max}`), name);
    }
    const budget = this.opts.budget;
    const refused = budget?.refuse(this.host.owner, name);
    if (refused) return this.replyError(id, refused, name);
    const ctx = new CallContext(name, timeout);
    let out: unknown;
    try {
      out = this.run(entry, input, ctx);
    } catch (err) {
      return this.replyError(id, err, name);
    }
    if (!(out instanceof Promise)) return this.reply(id, entry.proc, out);
    // It stays "running" until its answer is kept (see answer()), so a repeat arriving meanwhile waits for it.
    this.running.set(id, ctx);
    // Shared limits count the handler until it settles, even if its session ended meanwhile.
    budget?.started(this.host.owner);
    out.then(
      (value) => {
        budget?.done(this.host.owner);
        if (this.running.has(id)) this.reply(id, entry.proc, value);
      },
      (err) => {
        budget?.done(this.host.owner);
        if (this.running.has(id)) this.replyError(id, err, name);
      },
    );
  }

  /** A call sent again after a resume: answer from the cache, or wait for the running handler. */
  private onRepeat(id: number, name: string): void {
    const kept = this.replies?.get(id);
    if (kept) return this.send(kept);
    if (this.running.has(id)) return;
    // Neither kept nor running: the cache limit pushed the answer out.
    const err = new ChatterError("LIMIT", `the answer to call #${id} ("${name}") is no longer kept; it ran once`);
    this.send(encodeFrame([FrameType.Error, id, err.toWire()]));
  }

  /** Parses the input, then runs the handler; synchronous when both are. */
  private run(entry: HandlerEntry, input: unknown, ctx: CallContext): unknown {
    const parsed = check(entry.proc.takes, input, entry.proc.name, "input");
    const handler = entry.handler as (input: unknown, owner: unknown, ctx: CallContext) => unknown;
    if (parsed instanceof Promise) return parsed.then((v) => handler(v, this.host.owner, ctx));
    return handler(parsed, this.host.owner, ctx);
  }

  private reply(id: number, proc: Proc, value: unknown): void {
    let checked: unknown;
    try {
      checked = check(proc.returns, value, proc.name, "output");
    } catch (err) {
      return this.replyError(id, err, proc.name);
    }
    const out = proc.returns === null ? null : value;
    if (checked instanceof Promise) {
      checked.then(
        () => this.answer(id, [FrameType.Result, id, out], proc.name),
        (err) => this.replyError(id, err, proc.name),
      );
    } else this.answer(id, [FrameType.Result, id, out], proc.name);
  }

  private replyError(id: number, err: unknown, name: string): void {
    const wire = toWireError(err, name, this.opts.exposeStack ?? false);
    this.opts.log?.(`call to "${name}" failed: ${wire.code} ${wire.message}`);
    this.answer(id, [FrameType.Error, id, wire], name);
  }

  /** Encodes an answer, keeps it for repeats, and sends it. */
  private answer(id: number, frame: Frame, name: string): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame(frame);
    } catch (err) {
      const wire = { code: "HANDLER_ERROR", message: `result of "${name}" cannot be encoded: ${describeThrown(err)}` };
      bytes = encodeFrame([FrameType.Error, id, wire]);
    }
    const max = this.host.maxFrameBytes;
    if (bytes.byteLength > max) {
      bytes = encodeFrame([FrameType.Error, id, tooBig(name, bytes, max, "result").toWire()]);
    }
    this.running.delete(id);
    this.replies ??= new ReplyCache(this.opts.replies);
    this.replies.set(id, bytes);
    this.send(bytes);
  }

  /** A broadcast delivery: like a call, but nobody waits for the result. Repeats are dropped. */
  onEvent([, seq, name, input]: EventFrame): void {
    if (seq <= this.lastEvent) return;
    this.lastEvent = seq;
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
