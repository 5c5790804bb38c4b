/**
 * The two-way engine shared by the client and every server connection: it
 * makes calls (ids, timeouts, aborts, the offline queue) and answers them
 * (dispatch, validation, errors). It knows nothing of sockets; a `Link`
 * carries its frames.
 */
import { ChatterError, fromWireError, toWireError } from "../errors.ts";
import { check, type Proc } from "../proc.ts";
import { type CallFrame, type EventFrame, encodeFrame, type Frame, FrameType, PONG_BYTES } from "../wire/frames.ts";
import { CallContext } from "./context.ts";

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

export interface PeerOptions {
  /** The handlers this end implements; shared by all peers of a server. */
  handlers: Map<string, HandlerEntry>;
  /** Passed to handlers as their second argument. */
  owner: unknown;
  /** Which end this is, for messages: "server" or "client". */
  side: string;
  /** Frames other than calls and results (HELLO, WELCOME, PONG) go here. */
  onControl?: (frame: Frame) => void;
  log?: ((msg: string) => void) | undefined;
  /** Send handler stacks to the caller. */
  exposeStack?: boolean;
  /** Calls kept while there is no link; more fail at once with `LIMIT`. */
  maxQueue?: number;
}

export const DEFAULT_TIMEOUT = 30_000;

interface Pending {
  id: number;
  proc: Proc;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Set while the call waits in the offline queue; cleared once sent. */
  frame: Uint8Array | null;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** Both ends of a Chatter connection are a Peer. */
export class Peer {
  private nextId = 1;
  private link: Link | null = null;
  private closed: ChatterError | null = null;
  private readonly pending = new Map<number, Pending>();
  private queue: Pending[] = [];
  /** Incoming calls whose handler has not finished, for CANCEL. */
  private readonly running = new Map<number, CallContext>();
  private readonly opts: PeerOptions;

  constructor(opts: PeerOptions) {
    this.opts = opts;
  }

  /** Number of outgoing calls waiting for a result (queued ones included). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Number of incoming calls whose handler is still running. */
  get runningCount(): number {
    return this.running.size;
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
    if (!this.link && this.queue.length >= (this.opts.maxQueue ?? 1000)) {
      return Promise.reject(
        new ChatterError("LIMIT", `offline queue is full (${this.opts.maxQueue ?? 1000} calls); "${proc.name}" was not queued`),
      );
    }
    const id = this.nextId++;
    const wait = timeout > 0 && Number.isFinite(timeout) ? timeout : 0;
    const frame = encodeFrame([FrameType.Call, id, proc.name, input, wait]);
    return new Promise((resolve, reject) => {
      const p: Pending = { id, proc, resolve, reject, timer: undefined, frame: null, signal, onAbort: undefined };
      this.pending.set(id, p);
      if (wait) {
        p.timer = setTimeout(() => this.giveUp(p, timedOut(proc.name, wait)), wait);
        unref(p.timer);
      }
      if (signal) {
        p.onAbort = () => this.giveUp(p, aborted(proc.name, signal));
        signal.addEventListener("abort", p.onAbort, { once: true });
      }
      if (this.link) this.link.send(frame);
      else {
        p.frame = frame;
        this.queue.push(p);
        this.opts.log?.(`no connection: queued call to "${proc.name}" (#${id})`);
      }
    });
  }

  /** A timeout or abort: settle now; tell the other end if the call went out. */
  private giveUp(p: Pending, err: ChatterError): void {
    if (!this.pending.has(p.id)) return;
    if (p.frame) {
      // Never sent: drop it from the queue so it can never run later.
      this.queue = this.queue.filter((q) => q !== p);
    } else {
      this.send(encodeFrame([FrameType.Cancel, p.id]));
    }
    this.settle(p);
    p.reject(err);
  }

  private settle(p: Pending): void {
    this.pending.delete(p.id);
    if (p.timer !== undefined) clearTimeout(p.timer);
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
  }

  /** Sends a frame if there is a link; otherwise the frame is dropped. */
  send(frame: Uint8Array): void {
    this.link?.send(frame);
  }

  /** Starts using a socket; queued calls go out in the order they were made. */
  attach(link: Link): void {
    this.link = link;
    const queued = this.queue;
    this.queue = [];
    for (const p of queued) {
      const frame = p.frame as Uint8Array;
      p.frame = null;
      link.send(frame);
    }
    if (queued.length) this.opts.log?.(`sent ${queued.length} queued call(s)`);
  }

  /**
   * The socket is gone. Calls already sent fail with `DISCONNECTED`, since
   * they may or may not have run; queued calls wait for the next link.
   */
  detach(reason: string): void {
    this.link = null;
    for (const p of [...this.pending.values()]) {
      if (p.frame) continue;
      this.settle(p);
      p.reject(new ChatterError("DISCONNECTED", `connection lost during call to "${p.proc.name}" (${reason}); it may or may not have run`));
    }
    this.abortRunning(reason);
  }

  /** Ends the peer for good: every call fails, every running handler is aborted. */
  close(reason: string): void {
    if (this.closed) return;
    this.link = null;
    this.closed = new ChatterError("DISCONNECTED", `${this.opts.side} is closed (${reason})`);
    this.queue = [];
    for (const p of [...this.pending.values()]) {
      this.settle(p);
      p.reject(new ChatterError("DISCONNECTED", `call to "${p.proc.name}" failed: ${reason}`));
    }
    this.abortRunning(reason);
  }

  private abortRunning(reason: string): void {
    for (const ctx of this.running.values()) ctx.abort(new ChatterError("DISCONNECTED", `caller went away (${reason})`));
    this.running.clear();
  }

  /**
   * Handles one incoming message. Throws a `PROTOCOL` error on a malformed
   * frame; the owner then closes the socket.
   */
  receive(frame: Frame): void {
    switch (frame[0]) {
      case FrameType.Call:
        return this.onCall(frame);
      case FrameType.Result:
        return this.onResult(frame[1], frame[2]);
      case FrameType.Error: {
        const p = this.pending.get(frame[1]);
        if (!p) return; // Late answer to a call we gave up on.
        this.settle(p);
        return p.reject(fromWireError(frame[2]));
      }
      case FrameType.Event:
        return this.onEvent(frame);
      case FrameType.Cancel:
        this.running.get(frame[1])?.abort(new ChatterError("ABORTED", "the caller cancelled the call"));
        return;
      case FrameType.Ping:
        return this.send(PONG_BYTES);
      default:
        this.opts.onControl?.(frame);
    }
  }

  private onResult(id: number, value: unknown): void {
    const p = this.pending.get(id);
    if (!p) return; // Late answer to a call we gave up on.
    this.settle(p);
    try {
      const parsed = check(p.proc.returns, value, p.proc.name, "output");
      if (parsed instanceof Promise) parsed.then(p.resolve, p.reject);
      else p.resolve(parsed);
    } catch (err) {
      p.reject(err);
    }
  }

  private onCall([, id, name, input, timeout]: CallFrame): void {
    const entry = this.opts.handlers.get(name);
    if (!entry) {
      return this.replyError(id, new ChatterError("NOT_IMPLEMENTED", `"${name}" is not implemented on the ${this.opts.side}`), name);
    }
    const ctx = new CallContext(name, timeout);
    let out: unknown;
    try {
      out = this.run(entry, input, ctx);
    } catch (err) {
      return this.replyError(id, err, name);
    }
    if (!(out instanceof Promise)) return this.reply(id, entry.proc, out);
    this.running.set(id, ctx);
    out.then(
      (value) => {
        if (this.running.delete(id)) this.reply(id, entry.proc, value);
      },
      (err) => {
        if (this.running.delete(id)) this.replyError(id, err, name);
      },
    );
  }

  /** Parses the input, then runs the handler; synchronous when both are. */
  private run(entry: HandlerEntry, input: unknown, ctx: CallContext): unknown {
    const parsed = check(entry.proc.takes, input, entry.proc.name, "input");
    const handler = entry.handler as (input: unknown, owner: unknown, ctx: CallContext) => unknown;
    if (parsed instanceof Promise) return parsed.then((v) => handler(v, this.opts.owner, ctx));
    return handler(parsed, this.opts.owner, ctx);
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
        () => this.send(encodeFrame([FrameType.Result, id, out])),
        (err) => this.replyError(id, err, proc.name),
      );
    } else this.send(encodeFrame([FrameType.Result, id, out]));
  }

  private replyError(id: number, err: unknown, name: string): void {
    const wire = toWireError(err, name, this.opts.exposeStack ?? false);
    this.opts.log?.(`call to "${name}" failed: ${wire.code} ${wire.message}`);
    this.send(encodeFrame([FrameType.Error, id, wire]));
  }

  /** A broadcast delivery: like a call, but nobody waits for the result. */
  private onEvent([, name, input]: EventFrame): void {
    const entry = this.opts.handlers.get(name);
    if (!entry) return this.opts.log?.(`broadcast of "${name}" ignored: no handler on the ${this.opts.side}`);
    const fail = (err: unknown) => this.opts.log?.(`handler for broadcast "${name}" failed: ${(err as Error)?.message ?? err}`);
    try {
      const out = this.run(entry, input, new CallContext(name, 0));
      if (out instanceof Promise) out.catch(fail);
    } catch (err) {
      fail(err);
    }
  }
}

function timedOut(proc: string, ms: number): ChatterError {
  return new ChatterError("TIMEOUT", `call to "${proc}" timed out after ${ms} ms`);
}

function aborted(proc: string, signal: AbortSignal): ChatterError {
  const why = signal.reason instanceof Error ? `: ${signal.reason.message}` : "";
  return new ChatterError("ABORTED", `call to "${proc}" was aborted${why}`);
}

/** Timers must never keep a process alive on their own. */
export function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}
