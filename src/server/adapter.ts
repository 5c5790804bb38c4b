/**
 * The adapter contract: what a runtime adapter (Bun, Node, Deno) gives the
 * server core, and what the core gives it back. The core owns this contract;
 * an adapter only turns its runtime's upgrade and socket events into these
 * calls, and never reaches further into the core.
 *
 * An adapter gets its host from `hostFor(chatter, driver)` (registry.ts), then:
 * 1. hands each upgrade request to `host.admit(request, ip)`: a `Response` is
 *    the refusal to answer with, anything else is the socket's ticket;
 * 2. accepts the WebSocket, keeps the ticket with it, and reports its events
 *    with `host.open(ticket, socket)`, `host.message`, `host.closed` and, when
 *    the runtime has written out what it had queued, `host.drained`;
 * 3. gives the core a {@link SocketDriver}: how to send to, close and measure
 *    one of its sockets, and, where the runtime has it, native pub/sub.
 *
 * Keepalive (`idleTimeout`), slow consumers, frame limits, exclusions from
 * broadcasts and replay all live in the core, the same for every runtime.
 */
import type { SocketState } from "./socket-state.ts";

/**
 * What a driver did with a frame: written (or handed to the kernel), queued
 * behind earlier frames in the runtime's buffer, or dropped because that
 * buffer is past `maxBufferedBytes` (the core then closes the slow consumer).
 */
export type SendResult = "sent" | "queued" | "dropped";

/**
 * How the core works one runtime's sockets. One driver serves every socket of
 * an adapter, so no object is made per socket for it.
 * @typeParam S - the runtime's socket, as the adapter passes it to `host.open`
 */
export interface SocketDriver<S> {
  /** Sends one binary message. Past `maxBufferedBytes` waiting, it drops the message and says so. */
  send(socket: S, message: Uint8Array): SendResult;
  /** Closes with a WebSocket close code and a reason of at most 123 bytes. */
  close(socket: S, code: number, reason: string): void;
  /** Bytes queued for the socket and not yet written to the network. */
  bufferedAmount(socket: S): number;
  /** The runtime's own pub/sub (Bun's), which the core fans broadcasts out through when present. */
  native?: NativeTopics<S>;
}

/** A runtime's native pub/sub: the core mirrors topic membership into it and publishes once per topic. */
export interface NativeTopics<S> {
  subscribe(socket: S, topic: string): void;
  unsubscribe(socket: S, topic: string): void;
  /** @returns false when the message was dropped for some subscriber (one past `maxBufferedBytes`) */
  publish(topic: string, message: Uint8Array): boolean;
}

/** A socket's handle in the core, from `host.admit`; the adapter keeps it with the socket and passes it back. */
export type SocketTicket = SocketState;

/** What the core offers an adapter. */
export interface AdapterHost<S> {
  /** Bytes the runtime must let through in one message (never less than a handshake needs). */
  readonly maxMessageBytes: number;
  /** Bytes that may wait to be written to one socket before sends are dropped. */
  readonly maxBufferedBytes: number;
  /** Seconds a socket may stay silent; the core closes it then. An adapter may tell its runtime too. */
  readonly idleTimeout: number;
  /**
   * Decides whether an upgrade may go on: origin, rate and capacity checks, then `getConnectionData`.
   * @param request - the upgrade request, already checked by {@link checkUpgrade}
   * @param ip - the peer's address as the runtime sees it, or null
   * @returns the socket's ticket, or the HTTP response that refuses the upgrade; never throws
   */
  admit(request: Request, ip: string | null): SocketTicket | Response | Promise<SocketTicket | Response>;
  /** The socket for `ticket` opened. */
  open(ticket: SocketTicket, socket: S): void;
  /** A message arrived (text messages are a protocol error, which the core reports). */
  message(ticket: SocketTicket, message: string | Uint8Array): void;
  /** The socket closed, whoever closed it. */
  closed(ticket: SocketTicket, code: number, reason: string): void;
  /** The runtime wrote out everything it had queued for the socket. */
  drained(ticket: SocketTicket): void;
  /** Reports an error the adapter met (to `onError`). */
  report(error: unknown): void;
}
