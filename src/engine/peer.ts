/**
 * The two-way engine shared by the client and every server connection. A Peer
 * joins its two halves, calls.ts (the calls this end makes) and answers.ts
 * (the calls it answers), to one transport, and routes each incoming frame to
 * the half it is for. It knows nothing of sockets; a `Transport` carries its
 * frames.
 */
import type { ChatterError } from "../errors.ts";
import type { Proc } from "../proc.ts";
import * as FrameType from "../wire/frame-type.ts";
import { encodeFrame, type Frame } from "../wire/frames.ts";
import { Answerer } from "./answers.ts";
import { Calls } from "./calls.ts";
import type { StreamCalls } from "./stream-calls.ts";
import { openStream, preloadReader, preloadWriters, streamWindow } from "./stream-load.ts";
import type { CallOptions, ChatterStream, PeerHost, PeerOptions, StreamOptions, Transport } from "./types.ts";

/** Both ends of a Chatter connection are a Peer. */
export class Peer implements PeerHost {
  /** Where frames go now: set by `attach`, null between sockets. */
  transport: Transport | null = null;
  /**
   * The calling half (outgoing calls, their timeouts and the offline queue) and the answering half (incoming
   * calls, kept answers, broadcasts), each made on first use: most of a server's sessions sit idle, taking
   * broadcasts and making no calls either way, and the two halves are about 250 bytes of heap a session.
   * Until one is made, it is known to be empty, and the reads below answer for it. Read by handover.ts too.
   */
  callsMade: Calls | null = null;
  answersMade: Answerer | null = null;
  /** Streams this end reads, made on the first (whose code loads then: see stream-load.ts). */
  private streams: StreamCalls | null = null;
  /** The largest frame the other end accepts (its `maxMessageBytes`, learned in WELCOME). */
  maxFrameBytes = Number.POSITIVE_INFINITY;
  readonly opts: PeerOptions;
  /** Passed to handlers as their second argument: the client, or the server connection. */
  readonly owner: unknown;

  constructor(opts: PeerOptions, owner: unknown) {
    this.opts = opts;
    this.owner = owner;
    if (opts.side === "server") {
      // A server is not bound by its size: its stream code loads with its first connection.
      preloadReader();
      preloadWriters();
    }
  }

  /** The calling half, made now if it was not yet. */
  get calls(): Calls {
    this.callsMade ??= new Calls(this);
    return this.callsMade;
  }

  /** The answering half, made now if it was not yet. */
  get answers(): Answerer {
    this.answersMade ??= new Answerer(this);
    return this.answersMade;
  }

  /** The highest broadcast sequence number handled, for HELLO. */
  get lastEvent(): number {
    return this.answersMade?.lastEvent ?? 0;
  }

  /** Answers kept for repeats. */
  get keptAnswers(): number {
    return this.answersMade?.keptCount ?? 0;
  }

  /** Outgoing calls waiting for an answer (queued ones included). */
  get pendingCount(): number {
    return this.callsMade?.size ?? 0;
  }

  /** Incoming calls whose handler is still running. */
  get runningCount(): number {
    return this.answersMade?.runningCount ?? 0;
  }

  /** Every call with a lower id is settled here; the other end may forget its answers. */
  get settledBelow(): number {
    // No call made yet: the first will be number 1.
    return this.callsMade?.settledBelow ?? 1;
  }

  /**
   * Calls `proc` on the other end.
   * @returns the parsed result; rejects with a `ChatterError`
   */
  call(proc: Proc, input: unknown, options?: CallOptions): Promise<unknown> {
    return this.calls.call(proc, input, options);
  }

  /**
   * Reads stream `proc` from the other end.
   * @returns an async iterable of its items; the CALL goes out when the loop first asks for one
   */
  stream(proc: Proc, input: unknown, options?: StreamOptions): ChatterStream<unknown> {
    const args = [input, options, streamWindow(proc, options)] as const;
    if (this.streams) return this.streams.stream(proc, ...args);
    return openStream(proc, (m) => (this.streams ??= new m.StreamCalls(this.calls, this)), args);
  }

  /** Sends a frame if there is a transport. Without one it is dropped: answers stay in the reply cache. */
  send(frame: Uint8Array): void {
    this.transport?.send(frame);
  }

  /**
   * Starts using a socket. On a resumed session, everything unanswered goes
   * out again (the other end answers repeats from its cache) along with owed
   * CANCELs; on a fresh one, only what was never sent.
   * @param peerSettledBelow - the other end's watermark, from HELLO or WELCOME
   * @param holdQueue - calls queued so far wait for `sendQueue`
   */
  attach(transport: Transport, resumed: boolean, peerSettledBelow = 0, holdQueue = false): void {
    this.transport = transport;
    const answers = this.answersMade;
    if (resumed && answers) {
      answers.forgetBelow(peerSettledBelow);
      // Items sent into the old socket may be lost: each stream waits for its reader's CREDIT to go on.
      answers.resumed();
    }
    // With no calls made, there is nothing to send again, hold or cancel.
    this.callsMade?.attach(transport, resumed, holdQueue);
  }

  /** The socket is backpressured: hold new calls until `release`. */
  hold(): void {
    this.calls.hold();
  }

  /**
   * The socket drained: send the calls held meanwhile, in order.
   * @param force - send even if no backpressure was noted (the queue's hold ended)
   */
  release(force = false): void {
    this.callsMade?.release(force);
  }

  /** Ends the hold `attach` put on the queue: the calls queued before it go out now, in order. */
  sendQueue(): void {
    this.callsMade?.sendQueue();
  }

  /** The socket is gone, for now: calls stay pending and handlers keep running until the session resumes or ends. */
  detach(): void {
    this.transport = null;
  }

  /**
   * The other end has forgotten this session. Calls that went out fail with
   * `DISCONNECTED` (they may or may not have run); calls never sent stay queued.
   */
  reset(reason: string): void {
    this.callsMade?.reset(reason);
    this.answersMade?.reset(reason);
  }

  /**
   * The session carries on elsewhere (another instance took it over after its own died), but the calls in
   * flight either way died: calls that went out fail with `DISCONNECTED`, answers kept for the other end are
   * forgotten (its call numbers start again). Broadcast numbers are kept.
   */
  lostCalls(reason: string): void {
    this.callsMade?.reset(reason);
    this.answersMade?.reset(reason, true);
  }

  /**
   * The session is given up, but the peer carries on: calls never sent fail with `error`; calls sent fail
   * with `DISCONNECTED`, since they may have run; the next session starts from scratch.
   */
  failAll(error: ChatterError): void {
    this.reset(`${error.code}: ${error.message}`);
    this.callsMade?.failQueued(error);
  }

  /** Ends the peer for good: every call fails, every running handler is aborted. */
  close(reason: string): void {
    if (this.callsMade?.closed) return;
    this.transport = null;
    // Made even now: it remembers that the peer is closed, so later calls fail.
    this.calls.close(reason);
    this.answersMade?.reset(reason);
  }

  /** Handles one decoded frame. */
  receive(frame: Frame): void {
    switch (frame[0]) {
      case FrameType.Call:
        return this.answers.onCall(frame);
      // With no calls made, an answer is for nobody.
      case FrameType.Result:
        return this.callsMade?.onAnswer(frame[1], frame[2], false);
      case FrameType.Error:
        return this.callsMade?.onAnswer(frame[1], frame[2], true);
      case FrameType.Event:
        if (this.opts.side === "server") return this.opts.onControl?.(frame, this.owner as never);
        return this.answers.onEvent(frame);
      case FrameType.Cancel:
        return this.answersMade?.cancel(frame[1]);
      case FrameType.Item:
        return this.streams?.onItem(frame[1], frame[2], frame[3]);
      case FrameType.Credit:
        return this.answersMade?.onCredit(frame[1], frame[2], frame[3]);
      case FrameType.Ping:
        this.answersMade?.forgetBelow(frame[1]);
        return this.send(encodeFrame([FrameType.Pong, this.settledBelow]));
      case FrameType.Pong:
        this.answersMade?.forgetBelow(frame[1]);
        return this.opts.onControl?.(frame, this.owner as never);
      default:
        this.opts.onControl?.(frame, this.owner as never);
    }
  }
}
