/**
 * The core's state for one socket, made when an upgrade is admitted. The
 * adapter keeps it with the runtime's socket as an opaque ticket (on Bun it is
 * `ws.data`) and hands it back with each event.
 */
import type { HelloFrame, Refusal } from "../wire/frames.ts";

export class SocketState {
  /** The client's id from the upgrade URL (`cid`), as claimed; the proven one once the handshake is done. */
  clientId: string;
  /** What `getConnectionData` returned. */
  readonly data: unknown;
  /** The runtime's socket, set when it opens; the core works it through the adapter's driver. */
  socket: unknown = null;
  /** The session this socket serves, once its HELLO is handled. */
  session: unknown = null;
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
  /** Set on a client socket here whose session lives on another instance: where its messages go (relay.ts). */
  relay: { home: string; relay: number; hello: HelloFrame } | null = null;
  /** Set when `socket` is a relay's end at the session's home (a `RemoteSocket`), not a runtime socket. */
  remote = false;
  /** Set when admission refused: the socket opens only to be told why, then closes. */
  refusal: Refusal | null = null;

  constructor(clientId: string, data: unknown, address: string | null = null) {
    this.clientId = clientId;
    this.data = data;
    this.address = address;
  }
}
