/**
 * The calling half of the engine: the calls this end makes and has no answer
 * for yet. It gives them ids, times them out, aborts them, keeps them in an
 * offline queue while there is no socket or the socket is backpressured, and
 * sends them again after a resume (the other end answers repeats from its
 * cache). The Peer routes the answers here.
 */
import { ChatterError, fromWireError } from "../errors.ts";
import { type Proc, parse } from "../proc.ts";
import * as FrameType from "../wire/frame-type.ts";
import { type CallFrame, encodeFrame } from "../wire/frames.ts";
import { tooBig } from "./answers.ts";
import { aborted, callSteps } from "./call-steps.ts";
import { Deadlines } from "./deadlines.ts";
import { CANCEL_KEEP_MS, MAX_CANCELS, type Pending, renumbered, SETTLED, timedOut } from "./pending.ts";
import type { StreamReader } from "./stream-reader.ts";
import type { CallOptions, PeerHost, Transport } from "./types.ts";

export class Calls {
  /** The id of the next call (handover.ts reads it and sets it). */
  nextId = 1;
  /** Set by `close`: every later call fails with it. */
  closed: ChatterError | null = null;
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
   * Calls given up lately, with when (made on first use). Sent again after every resume while they are kept:
   * a CANCEL sent into a socket that was already dead (but not yet known to be) is lost, and so may be the one
   * sent again on a socket that dies at once. A CANCEL for a call that has finished is ignored, so resending is
   * safe; the list is bounded in count and age.
   */
  private cancels: [id: number, at: number][] | null = null;
  /** The one timer behind every call's timeout; made on the first call that has one. */
  private deadlines: Deadlines<Pending> | null = null;
  private readonly host: PeerHost;

  constructor(host: PeerHost) {
    this.host = host;
  }

  /** @returns whether CANCELs are still kept for resending (those older than CANCEL_KEEP_MS are dropped first) */
  owedCancels(): boolean {
    const list = this.cancels;
    if (!list) return false;
    const from = Date.now() - CANCEL_KEEP_MS;
    let old = 0;
    while (old < list.length && (list[old] as [number, number])[1] < from) old++;
    if (old) list.splice(0, old);
    if (list.length === 0) this.cancels = null;
    return this.cancels !== null;
  }

  /** Outgoing calls waiting for an answer (queued ones included). */
  get size(): number {
    return this.pending.size;
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
    return callSteps(proc, input, options, this);
  }

  /** Sends or queues a call whose input is parsed (see callSteps); with a reader, a stream granted `window` items. */
  start(proc: Proc, input: unknown, timeout: number, signal: AbortSignal | undefined, reader?: StreamReader, window = 0): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed);
    const maxQueue = this.host.opts.maxQueue ?? 1000;
    if ((!this.host.transport || this.held) && this.queued >= maxQueue) {
      return Promise.reject(new ChatterError("LIMIT", `offline queue is full (${maxQueue} calls); "${proc.name}" was not queued`));
    }
    const id = this.nextId;
    const wait = timeout > 0 && Number.isFinite(timeout) ? timeout : 0;
    let frame: Uint8Array;
    try {
      const call: CallFrame = [FrameType.Call, id, proc.name, input, wait, this.settledBelow];
      if (reader) call.push(window);
      frame = encodeFrame(call);
    } catch (err) {
      return Promise.reject(new ChatterError("VALIDATION", `input of "${proc.name}" cannot be encoded: ${(err as Error).message}`));
    }
    const max = this.host.maxFrameBytes;
    if (frame.byteLength > max) return Promise.reject(tooBig(proc.name, frame, max));
    this.nextId++;
    if (reader) {
      reader.id = id;
      reader.timeout = wait;
    }
    // A stream's timeout bounds each wait for an item (the reader's clock), not the whole call.
    const whole = reader ? 0 : wait;
    return new Promise((resolve, reject) =>
      this.track({ id, proc, resolve, reject, wait: whole, deadline: 0, frame, sent: false, signal, onAbort: undefined, reader }),
    );
  }

  /** Registers a new call and sends or queues it. Closures made from here on do not capture `start`'s scope, which holds the frame. */
  private track(p: Pending): void {
    this.pending.set(p.id, p);
    if (p.wait) this.clock().add(p, p.wait);
    if (p.signal) this.watch(p, p.signal);
    const transport = this.host.transport;
    if (transport && !this.held) {
      p.sent = true;
      transport.send(p.frame);
    } else {
      this.queued++;
      this.host.opts.log?.(`no connection: queued call to "${p.proc.name}" (#${p.id})`);
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
  giveUp(p: Pending, err: ChatterError): void {
    if (!this.pending.has(p.id)) return;
    if (!p.sent) this.queued--;
    else {
      this.host.transport?.send(encodeFrame([FrameType.Cancel, p.id]));
      this.cancels ??= [];
      if (this.cancels.push([p.id, Date.now()]) > MAX_CANCELS) this.cancels.shift();
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

  /** @returns a pending call by id (streams look theirs up) */
  pendingOf(id: number): Pending | undefined {
    return this.pending.get(id);
  }

  /** Settles a stream whose END came and every item with it, and tells the writer it has them all, so it lets them go. */
  endStream(p: Pending, reader: StreamReader): void {
    if (!reader.complete) return;
    this.settle(p);
    p.resolve(reader.received);
    this.host.transport?.send(reader.creditFrame());
  }

  /** An answer to one of our calls (RESULT, or ERROR when `failed`); for a stream, RESULT is its END. */
  onAnswer(id: number, payload: unknown, failed: boolean): void {
    const p = this.pending.get(id);
    if (!p) return; // Late answer to a call we gave up on.
    if (p.reader && !failed) {
      p.reader.onEnd(payload);
      return this.endStream(p, p.reader);
    }
    // Past its deadline the caller is owed a TIMEOUT: only a late event loop kept the timer from firing.
    const late = p.deadline !== 0 && performance.now() >= p.deadline;
    this.settle(p);
    if (late) return p.reject(timedOut(p));
    if (failed) return p.reject(fromWireError(payload));
    try {
      const parsed = parse(p.proc.returns, payload, p.proc.name, "output");
      if (parsed instanceof Promise) parsed.then(p.resolve, p.reject);
      else p.resolve(parsed);
    } catch (err) {
      p.reject(err);
    }
  }

  /**
   * A socket is in use now (see `Peer.attach`). On a resumed session, everything unanswered goes out again
   * along with owed CANCELs; on a fresh one, only what was never sent.
   */
  attach(transport: Transport, resumed: boolean, holdQueue: boolean): void {
    this.held = false;
    // Calls queued so far wait for `sendQueue` (a fresh session's setup runs first); a hold still pending carries on.
    if (holdQueue) this.heldBelow = this.nextId;
    if (!resumed) this.cancels = null;
    else if (this.owedCancels()) for (const [id] of this.cancels ?? []) transport.send(encodeFrame([FrameType.Cancel, id]));
    let resent = 0;
    for (const p of [...this.pending.values()]) {
      if (p.sent && !resumed) continue;
      if (!p.sent && p.id < this.heldBelow) continue;
      if (this.sendPending(p, transport)) resent++;
    }
    if (resent) this.host.opts.log?.(`sent ${resent} call(s) held while disconnected`);
  }

  /**
   * Sends a pending call (again, after a resume). One queued before this end knew the other's limit, and over
   * it, fails instead: it would only get the socket closed.
   * @returns whether it went out
   */
  private sendPending(p: Pending, transport: Transport): boolean {
    if (!p.sent) this.queued--;
    const max = this.host.maxFrameBytes;
    if (p.frame.byteLength > max) {
      this.settle(p);
      p.reject(tooBig(p.proc.name, p.frame, max));
      return false;
    }
    const again = p.sent;
    p.sent = true;
    transport.send(p.frame);
    // A stream sent again after a resume: tell the writer which items are here, so it goes on from the next.
    if (again && p.reader) transport.send(p.reader.creditFrame());
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
    const transport = this.host.transport;
    if (!transport) return;
    for (const p of [...this.pending.values()]) {
      if (this.held) break; // Pushed back again: wait for the next drain.
      if (p.sent || p.id < this.heldBelow) continue;
      this.sendPending(p, transport);
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
    if (this.host.transport && !this.held) this.release(true);
  }

  private renumber(p: Pending): void {
    // Read while the call still counts as pending: the watermark must stay at or below its (new) id.
    const below = this.settledBelow;
    this.pending.delete(p.id);
    renumbered(p, this.nextId++, below);
    this.pending.set(p.id, p);
    this.lowest = 0;
  }

  /** The other end has forgotten this session: calls that went out fail with `DISCONNECTED`; calls never sent stay queued. */
  reset(reason: string): void {
    for (const p of [...this.pending.values()]) {
      if (!p.sent) continue;
      this.settle(p);
      p.reject(new ChatterError("DISCONNECTED", `session lost during call to "${p.proc.name}" (${reason}); it may or may not have run`));
    }
    this.cancels = null;
  }

  /** The session is given up: calls never sent fail with `error`. */
  failQueued(error: ChatterError): void {
    for (const p of [...this.pending.values()]) {
      if (p.sent) continue;
      this.queued--;
      this.settle(p);
      p.reject(error);
    }
  }

  /** Ends for good: every call fails, and so does every later one. */
  close(reason: string): void {
    this.closed = new ChatterError("DISCONNECTED", `${this.host.opts.side} connection is closed (${reason})`);
    for (const p of [...this.pending.values()]) {
      this.settle(p);
      p.reject(new ChatterError("DISCONNECTED", `call to "${p.proc.name}" failed: ${reason}`));
    }
    this.queued = 0;
    this.deadlines?.clear();
  }
}
