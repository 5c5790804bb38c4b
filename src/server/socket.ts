/**
 * The contract between the server core and a runtime adapter. An adapter
 * turns its runtime's WebSocket into a `ServerSocket` (Bun's already is one),
 * calls `open`, `message` and `closed` on the core, and, where the runtime has
 * native pub/sub, offers a `Publisher`.
 */

import type { Refusal } from "../wire/frames.ts";

/** One accepted WebSocket, as the server core sees it. */
export interface ServerSocket {
  /**
   * Sends one binary frame. Returns the bytes written, -1 when the frame was
   * queued under backpressure, or 0 when it was dropped.
   */
  send(frame: Uint8Array): number;
  /** Closes with a WebSocket close code and a short reason. */
  close(code?: number, reason?: string): void;
  /** Joins a native pub/sub topic; a no-op on runtimes without one. */
  subscribe(topic: string): void;
  /** Leaves a native pub/sub topic. */
  unsubscribe(topic: string): void;
  /** Bytes queued for this socket and not yet written to the network. */
  getBufferedAmount(): number;
}

/** Native fan-out: sends one frame to every socket subscribed to a topic. */
export interface Publisher {
  /** Returns 0 when the frame was dropped for some subscriber, as Bun's `server.publish` does. */
  publish(topic: string, frame: Uint8Array): number;
}

/**
 * One socket's state in the core. Made when an upgrade is admitted, with what
 * the upgrade learned; the adapter keeps it with the socket (on Bun it is
 * `ws.data`) and hands it back with each event.
 */
export class SocketLink {
  /** The client's id from the upgrade URL (`cid`), as claimed; the proven one once the handshake is done. */
  clientId: string;
  /** What `getConnectionData` returned. */
  readonly data: unknown;
  /** The socket, set when it opens. */
  socket!: ServerSocket;
  /** The session this socket serves, once its HELLO is handled. */
  conn: unknown = null;
  helloTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** Set once the core closes the socket: frames still in a batch after that are ignored. */
  closing = false;
  /** The client's address as admission judged it (per /64 for IPv6), for the per-address limit. */
  readonly address: string | null;
  /** Whether the socket counts against the connection limits (from open until closed). */
  counted = false;
  /** The core's clock when the socket last sent something: the second its frame count is for. */
  window = 0;
  /** Frames received in that second. */
  frames = 0;
  /** Set when admission refused: the socket opens only to be told why, then closes. */
  refusal: Refusal | null = null;

  constructor(clientId: string, data: unknown, address: string | null = null) {
    this.clientId = clientId;
    this.data = data;
    this.address = address;
  }
}
