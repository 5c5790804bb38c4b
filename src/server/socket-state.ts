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
  address: string | null;
  /** Whether the socket counts against the connection limits (from open until closed). */
  counted = false;
  /** The core's clock when the socket last sent something: the second its frame count is for. */
  window = 0;
  /** Frames received in that second. */
  frames = 0;
  /**
   * What only a few sockets need (relayed or refused ones), made when first set: one field less keeps an
   * ordinary socket's state in a smaller heap cell (112 bytes, not 160; thousands of idle sockets add up).
   */
  private rare: RareState | null = null;

  constructor(clientId: string, data: unknown, address: string | null = null) {
    this.clientId = clientId;
    this.data = data;
    this.address = address;
  }

  /** Set on a client socket here whose session lives on another instance: where its messages go (relay.ts). */
  get relay(): RelayRoute | null {
    return this.rare?.relay ?? null;
  }
  set relay(route: RelayRoute | null) {
    if (route || this.rare) this.made().relay = route;
  }

  /** Set when `socket` is a relay's end at the session's home (a `RemoteSocket`), not a runtime socket. */
  get remote(): boolean {
    return this.rare?.remote ?? false;
  }
  set remote(remote: boolean) {
    if (remote || this.rare) this.made().remote = remote;
  }

  /** Set when admission refused: the socket opens only to be told why, then closes. */
  get refusal(): Refusal | null {
    return this.rare?.refusal ?? null;
  }
  set refusal(refusal: Refusal | null) {
    if (refusal || this.rare) this.made().refusal = refusal;
  }

  private made(): RareState {
    this.rare ??= { relay: null, remote: false, refusal: null };
    return this.rare;
  }
}

/** Where a client socket here is relayed: the session's home, the relay's number, its HELLO, and redirects followed. */
type RelayRoute = { home: string; relay: number; hello: HelloFrame; hops?: number };

interface RareState {
  relay: RelayRoute | null;
  remote: boolean;
  refusal: Refusal | null;
}
