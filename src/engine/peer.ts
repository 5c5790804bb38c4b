/**
 * The two-way engine shared by the client and every server connection. This
 * half makes calls (ids, timeouts, aborts, the offline queue, resending after
 * a resume) and routes incoming frames; answers.ts answers them. It knows
 * nothing of sockets; a `Link` carries its frames.
 */
import { ChatterError, fromWireError } from "../errors.ts";
import { check, type Proc } from "../proc.ts";
import { decode } from "../wire/codec.ts";
import { type CallFrame, encodeFrame, type Frame, FrameType } from "../wire/frames.ts";
import { Answerer, type AnswerHooks, type CallBudget, tooBig } from "./answers.ts";
import type { CallContext } from "./context.ts";
import { Deadlines } from "./deadlines.ts";
import type { ReplyLimits } from "./replies.ts";

/** Where the engine's frames go: one open socket. */
export interface Link {
  send(frame: Uint8Array): void;
}

/** A registered handler; `owner` is the client or the server connection. */
export type Handler = (input: unknown, owner: never, ctx: CallContext) => unknown;
export interface HandlerEntry {
  proc: Proc;
  handler: Handler;
}

/** Options of one call. */
export interface CallOptions {
  /** Milliseconds to wait; overrides the procedure's own timeout. `0` waits for ever. */
  timeout?: number;
  /** Aborting it rejects the call at once with `ABORTED` and cancels the remote handler. */
  signal?: AbortSignal;
}

/** How a peer behaves. A server builds one for all its connections, so an idle session costs less memory. */
export interface PeerOptions extends AnswerHooks {
  /** The handlers this end implements; shared by all peers of a server. */
  handlers: Map<string, HandlerEntry>;
  /** Which end this is, for messages: "server" or "client". */
  side: "server" | "client";
  /** Frames the engine does not handle itself (HELLO, WELCOME, PONG; EVENT on the server) go here, with the peer's owner. */
  onControl?: (frame: Frame, owner: never) => void;
  log?: ((msg: string) => void) | undefined;
  /** Send handler stacks to the caller. */
  exposeStack?: boolean;
  /** Calls kept while there is no link; more fail at once with `LIMIT`. */
  maxQueue?: number;
  /** Incoming calls whose handlers may run at once; more are answered with `LIMIT`. */
  maxConcurrent?: number;
  /** Bounds on the answers kept for repeats. */
  replies?: Partial<ReplyLimits>;
  /** Limits shared by many peers (the server's per-client and server-wide handler counts). */
  budget?: CallBudget;
}

export const DEFAULT_TIMEOUT = 30_000;
const SETTLED = new Uint8Array(0);
/** CANCELs kept for resending after a resume. */
const MAX_CANCELS = 1000;

interface Pending {
  id: number;
  proc: Proc;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** Its timeout in ms, 0 for none. */
  wait: number;
  /** When it times out (performance.now() clock); 0 when it waits for ever. */
  deadline: number;
  frame: Uint8Array;
  /** Whether the frame went out on some socket; unsent calls are the offline queue. */
  sent: boolean;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** Both ends of a Chatter connection are a Peer. */
export class Peer {
  private nextId = 1;
  private link: Link | null = null;
  private closed: ChatterError | null = null;
  /** Outgoing calls without an answer, in id order. */
  private readonly pending = new Map<number, Pending>();
  private queued = 0;
  /** The lowest pending call id, or 0 when it must be looked up again. */
  private lowest = 0;
  /** Set while the socket is backpressured: new calls wait in the queue (answers still go out). */
  private held = false;
  /** Unsent calls with a lower id wait for `sendQueue`; 0 when nothing is held. */
  private heldBelow = 0;
  /**
   * Calls given up since the last attach (made on first use). Sent again after a resume: a CANCEL
   * sent into a socket that was already dead (but not yet known to be) is lost.
   */
  private cancels: number[] | null = null;
  /** The answering half: incoming calls, kept answers, broadcasts. */
  private readonly answers: Answerer;
  /** The one timer behind every call's timeout; made on the first call that has one. */
  private deadlines: Deadlines<Pending> | null = null;
  /** The largest frame the other end accepts (its `maxMessageBytes`, learned in WELCOME). */
  maxFrameBytes = Number.POSITIVE_INFINITY;
  readonly opts: PeerOptions;
  /** Passed to handlers as their second argument: the client, or the server connection. */
  readonly owner: unknown;

  constructor(opts: PeerOptions, owner: unknown) {
    this.opts = opts;
    this.owner = owner;
    this.answers = new Answerer(this);
  }

  /** The highest broadcast sequence number handled, for HELLO. */
  get lastEvent(): number {
    return this.answers.lastEvent;
  }

  /** Answers kept for repeats. */
  get keptAnswers(): number {
    return this.answers.keptCount;
  }

  /** Outgoing calls waiting for an answer (queued ones included). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Incoming calls whose handler is still running. */
  get runningCount(): number {
    return this.answers.runningCount;
  }

  /** Every call with a lower id is settled here; the other end may forget its answers. */
  get settledBelow(): number {
    if (this.pending.size === 0) return this.nextId;
    // Cached: finding the lowest pending id takes a Map iterator, and this is read on every call.
    if (this.lowest === 0) {
      for (const id of this.pending.keys()) {
        this.lowest = id;
        break;
      }
    }
    return this.lowest;
  }

  /**
   * Calls `proc` on the other end.
   * @returns the parsed result; rejects with a `ChatterError`
   */
  call(proc: Proc, input: unknown, options?: CallOptions): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed);
    const timeout = options?.timeout ?? proc.timeout ?? DEFAULT_TIMEOUT;
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(aborted(proc.name, signal));
    let checked: unknown;
    try {
      checked = check(proc.takes, input, proc.name, "input");
    } catch (err) {
      return Promise.reject(err);
    }
    // Send the caller's value, not the parsed one: the receiver parses it, so transforms run once.
    const value = proc.takes === null ? null : input;
    if (checked instanceof Promise) return checked.then(() => this.start(proc, value, timeout, signal));
    return this.start(proc, value, timeout, signal);
  }

  private start(proc: Proc, input: unknown, timeout: number, signal: AbortSignal | undefined): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed);
    const maxQueue = this.opts.maxQueue ?? 1000;
    if ((!this.link || this.held) && this.queued >= maxQueue) {
      return Promise.reject(new ChatterError("LIMIT", `offline queue is full (${maxQueue} calls); "${proc.name}" was not queued`));
    }
    const id = this.nextId;
    const wait = timeout > 0 && Number.isFinite(timeout) ? timeout : 0;
    let frame: Uint8Array;
    try {
      frame = encodeFrame([FrameType.Call, id, proc.name, input, wait, this.settledBelow]);
    } catch (err) {
      return Promise.reject(new ChatterError("VALIDATION", `input of "${proc.name}" cannot be encoded: ${(err as Error).message}`));
    }
    if (frame.byteLength > this.maxFrameBytes) return Promise.reject(tooBig(proc.name, frame, this.maxFrameBytes));
    this.nextId++;
    return new Promise((resolve, reject) =>
      this.track({ id, proc, resolve, reject, wait, deadline: 0, frame, sent: false, signal, onAbort: undefined }),
    );
  }

  /** Registers a new call and sends or queues it. Closures made from here on do not capture `start`'s scope, which holds the frame. */
  private track(p: Pending): void {
    this.pending.set(p.id, p);
    if (p.wait) this.clock().add(p, p.wait);
    if (p.signal) this.watch(p, p.signal);
    if (this.link && !this.held) {
      p.sent = true;
      this.link.send(p.frame);
    } else {
      this.queued++;
      this.opts.log?.(`no connection: queued call to "${p.proc.name}" (#${p.id})`);
    }
  }

  /** The deadline clock, made on first use. Its callback lives as long as the peer, so it is made here, where it captures only `this`. */
  private clock(): Deadlines<Pending> {
    this.deadlines ??= new Deadlines((p) => this.giveUp(p, timedOut(p)));
    return this.deadlines;
  }

  /** Aborting `signal` gives up on the call. */
  private watch(p: Pending, signal: AbortSignal): void {
    p.onAbort = () => this.giveUp(p, aborted(p.proc.name, signal));
    signal.addEventListener("abort", p.onAbort, { once: true });
  }

  /** A timeout or abort: settle now and make sure the call never runs later. */
  private giveUp(p: Pending, err: ChatterError): void {
    if (!this.pending.has(p.id)) return;
    if (!p.sent) this.queued--;
    else {
      this.link?.send(encodeFrame([FrameType.Cancel, p.id]));
      // A CANCEL for a call that has finished is ignored, so resending is safe; keep the list bounded.
      this.cancels ??= [];
      if (this.cancels.push(p.id) > MAX_CANCELS) this.cancels.shift();
    }
    this.settle(p);
    p.reject(err);
  }

  private settle(p: Pending): void {
    this.pending.delete(p.id);
    if (p.id === this.lowest) this.lowest = 0;
    this.deadlines?.settle(p);
    // The deadline clock may hold the settled call a while longer; it need not hold the encoded input too.
    p.frame = SETTLED;
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
  }

  /** Sends a frame if there is a link. Without one it is dropped: answers stay in the reply cache. */
  send(frame: Uint8Array): void {
    this.link?.send(frame);
  }

  /**
   * Starts using a socket. On a resumed session, everything unanswered goes
   * out again (the other end answers repeats from its cache) along with owed
   * CANCELs; on a fresh one, only what was never sent.
   * @param peerSettledBelow - the other end's watermark, from HELLO or WELCOME
   */
  attach(link: Link, resumed: boolean, peerSettledBelow = 0, holdQueue = false): void {
    this.link = link;
    this.held = false;
    // Calls queued so far wait for `sendQueue` (a fresh session's setup runs first); a hold still pending carries on.
    if (holdQueue) this.heldBelow = this.nextId;
    if (resumed) {
      this.answers.settledBelow(peerSettledBelow);
      for (const id of this.cancels ?? []) link.send(encodeFrame([FrameType.Cancel, id]));
    }
    this.cancels = null;
    let resent = 0;
    for (const p of [...this.pending.values()]) {
      if (p.sent && !resumed) continue;
      if (!p.sent && p.id < this.heldBelow) continue;
      if (this.sendPending(p, link)) resent++;
    }
    if (resent) this.opts.log?.(`sent ${resent} call(s) held while disconnected`);
  }

  /**
   * Sends a pending call (again, after a resume). One queued before this end knew the other's limit, and over
   * it, fails instead: it would only get the socket closed.
   * @returns whether it went out
   */
  private sendPending(p: Pending, link: Link): boolean {
    if (!p.sent) this.queued--;
    if (p.frame.byteLength > this.maxFrameBytes) {
      this.settle(p);
      p.reject(tooBig(p.proc.name, p.frame, this.maxFrameBytes));
      return false;
    }
    p.sent = true;
    link.send(p.frame);
    return true;
  }

  /** The socket is backpressured: hold new calls until `release`. */
  hold(): void {
    this.held = true;
  }

  /**
   * The socket drained: send the calls held meanwhile, in order.
   * @param force - send even if no backpressure was noted (the queue's hold ended)
   */
  release(force = false): void {
    if (!this.held && !force) return;
    this.held = false;
    const link = this.link;
    if (!link) return;
    for (const p of [...this.pending.values()]) {
      if (this.held) break; // Pushed back again: wait for the next drain.
      if (p.sent || p.id < this.heldBelow) continue;
      this.sendPending(p, link);
    }
  }

  /**
   * Ends the hold `attach` put on the queue: the calls queued before it go out now, in order. Calls made
   * meanwhile went out first with higher ids, so the held ones (never sent, so never seen by the other end)
   * take fresh ids above them: the other end takes an id at or below one it has seen for a repeat.
   */
  sendQueue(): void {
    const below = this.heldBelow;
    this.heldBelow = 0;
    const renumber = this.nextId > below;
    for (const p of [...this.pending.values()]) {
      if (p.sent || p.id >= below) continue;
      if (renumber) this.renumber(p);
    }
    // Backpressured or away: the drain or the next attach sends them.
    if (this.link && !this.held) this.release(true);
  }

  private renumber(p: Pending): void {
    const call = decode(p.frame) as CallFrame;
    // Read while the call still counts as pending: the watermark must stay at or below its (new) id.
    call[5] = this.settledBelow;
    this.pending.delete(p.id);
    p.id = this.nextId++;
    call[1] = p.id;
    p.frame = encodeFrame(call);
    this.pending.set(p.id, p);
    this.lowest = 0;
  }

  /** The socket is gone, for now: calls stay pending and handlers keep running until the session resumes or ends. */
  detach(): void {
    this.link = null;
  }

  /**
   * The other end has forgotten this session. Calls that went out fail with
   * `DISCONNECTED` (they may or may not have run); calls never sent stay queued.
   */
  reset(reason: string): void {
    for (const p of [...this.pending.values()]) {
      if (!p.sent) continue;
      this.settle(p);
      p.reject(new ChatterError("DISCONNECTED", `session lost during call to "${p.proc.name}" (${reason}); it may or may not have run`));
    }
    this.cancels = null;
    this.answers.reset(reason);
  }

  /**
   * The session is given up, but the peer carries on: calls never sent fail with `error`; calls sent fail
   * with `DISCONNECTED`, since they may have run; the next session starts from scratch.
   */
  failAll(error: ChatterError): void {
    this.reset(`${error.code}: ${error.message}`);
    for (const p of [...this.pending.values()]) {
      this.queued--;
      this.settle(p);
      p.reject(error);
    }
  }

  /** Ends the peer for good: every call fails, every running handler is aborted. */
  close(reason: string): void {
    if (this.closed) return;
    this.link = null;
    this.closed = new ChatterError("DISCONNECTED", `${this.opts.side} connection is closed (${reason})`);
    for (const p of [...this.pending.values()]) {
      this.settle(p);
      p.reject(new ChatterError("DISCONNECTED", `call to "${p.proc.name}" failed: ${reason}`));
    }
    this.queued = 0;
    this.deadlines?.clear();
    this.answers.reset(reason);
  }

  /** Handles one decoded frame. */
  receive(frame: Frame): void {
    switch (frame[0]) {
      case FrameType.Call:
        return this.answers.onCall(frame);
      case FrameType.Result:
        return this.onAnswer(frame[1], frame[2], false);
      case FrameType.Error:
        return this.onAnswer(frame[1], frame[2], true);
      case FrameType.Event:
        if (this.opts.side === "server") return this.opts.onControl?.(frame, this.owner as never);
        return this.answers.onEvent(frame);
      case FrameType.Cancel:
        return this.answers.cancel(frame[1]);
      case FrameType.Ping:
        this.answers.settledBelow(frame[1]);
        return this.send(encodeFrame([FrameType.Pong, this.settledBelow]));
      case FrameType.Pong:
        this.answers.settledBelow(frame[1]);
        return this.opts.onControl?.(frame, this.owner as never);
      default:
        this.opts.onControl?.(frame, this.owner as never);
    }
  }

  private onAnswer(id: number, payload: unknown, failed: boolean): void {
    const p = this.pending.get(id);
    if (!p) return; // Late answer to a call we gave up on.
    // Past its deadline the caller is owed a TIMEOUT: only a late event loop kept the timer from firing.
    const late = p.deadline !== 0 && performance.now() >= p.deadline;
    this.settle(p);
    if (late) return p.reject(timedOut(p));
    if (failed) return p.reject(fromWireError(payload));
    try {
      const parsed = check(p.proc.returns, payload, p.proc.name, "output");
      if (parsed instanceof Promise) parsed.then(p.resolve, p.reject);
      else p.resolve(parsed);
    } catch (err) {
      p.reject(err);
    }
  }
}

function timedOut(p: Pending): ChatterError {
  return new ChatterError("TIMEOUT", `call to "${p.proc.name}" timed out after ${p.wait} ms`);
}

function aborted(proc: string, signal: AbortSignal): ChatterError {
  const why = signal.reason instanceof Error ? `: ${signal.reason.message}` : "";
  return new ChatterError("ABORTED", `call to "${proc}" was aborted${why}`);
}
