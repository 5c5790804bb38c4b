/**
 * The engine's shared vocabulary: what carries its frames, what a handler is,
 * and how a peer is configured. The halves of the engine (calls.ts, answers.ts)
 * depend on these and on the small `PeerHost` interface, never on the Peer
 * class that joins them, so no engine module imports another in a circle.
 */
import type { ChatterError } from "../errors.ts";
import type { Proc } from "../proc.ts";
import type { Frame } from "../wire/frames.ts";
import type { CallContext } from "./context.ts";
import type { Middleware } from "./middleware.ts";
import type { ReplyLimits } from "./replies.ts";

/** Where the engine's frames go: one open socket. */
export interface Transport {
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

/** Options of one stream. */
export interface StreamOptions {
  /** Milliseconds to wait for each next item; overrides the procedure's own timeout. `0` waits for ever. */
  timeout?: number;
  /** Aborting it ends the loop at once with `ABORTED` and stops the remote iterator. */
  signal?: AbortSignal;
  /** Items the writer may send before the loop takes them (its credit). Defaults to 64. */
  window?: number;
}

/** What `stream()` returns: read it with `for await`; `return()` (or `break`) stops the remote iterator. */
export interface ChatterStream<T> extends AsyncIterableIterator<T> {
  next(): Promise<IteratorResult<T, undefined>>;
  return(): Promise<IteratorResult<T, undefined>>;
  [Symbol.asyncIterator](): ChatterStream<T>;
}

export const DEFAULT_TIMEOUT = 30_000;

/** How an end wraps and reshapes its answers; part of PeerOptions. */
export interface AnswerHooks {
  /** Wrap every incoming call and broadcast, outermost first (`server.use`, `client.use`). */
  middleware?: Middleware<never>[];
  /**
   * Reshapes every error before it is sent as an answer: handler and
   * middleware errors, validation on arrival, refusals. One that throws or
   * returns something else is reported, and a generic `HANDLER_ERROR` is sent.
   */
  formatError?: (error: unknown, ctx: CallContext) => ChatterError;
  /** Gets this end's own failures nobody awaits (a failing `formatError`), with the peer's owner. */
  onError?: (error: unknown, owner: never) => void;
}

/** Handler limits shared by many peers: checked before a handler runs, counted while an async one is running. */
export interface CallBudget {
  /** @returns the error that refuses a call from `owner` now, or null */
  refuse(owner: unknown, proc: string): ChatterError | null;
  started(owner: unknown): void;
  done(owner: unknown): void;
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
  /** Calls kept while there is no transport; more fail at once with `LIMIT`. */
  maxQueue?: number;
  /** Incoming calls whose handlers may run at once; more are answered with `LIMIT`. */
  maxConcurrent?: number;
  /** Bounds on the answers kept for repeats. */
  replies?: Partial<ReplyLimits>;
  /** Bytes of stream items held for readers, shared by many peers (a server's sessions). */
  streamBudget?: { used: number; readonly max: number };
  /** Limits shared by many peers (the server's per-client and server-wide handler counts). */
  budget?: CallBudget;
}

/** What each half of the engine needs of the Peer that joins them. */
export interface PeerHost {
  readonly opts: PeerOptions;
  /** Passed to handlers as their second argument: the client, or the server connection. */
  readonly owner: unknown;
  /** The largest frame the other end accepts (its `maxMessageBytes`, learned in WELCOME). */
  readonly maxFrameBytes: number;
  /** Where frames go now; null between sockets. */
  readonly transport: Transport | null;
  /** Sends a frame on the current transport, if any. */
  send(frame: Uint8Array): void;
}
