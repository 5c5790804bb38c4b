/**
 * What the server core asks of its cluster, when it has one. `ClusterMembership` (cluster-node.ts) is it;
 * the core knows it only by this shape, so no cluster file is imported by the core, and none of them by this.
 */
import type { HelloFrame } from "../wire/frames.ts";
import type { ClusterBroadcast, ClusterMember, ClusterStats } from "./cluster.ts";
import type { Session } from "./session.ts";
import type { SocketState } from "./socket-state.ts";

export interface ClusterPort {
  readonly stats: ClusterStats;
  /** Sockets relayed between instances (relay.ts). */
  readonly relays: {
    /** A message from a client here whose session lives elsewhere. */
    up(state: SocketState, message: Uint8Array): void;
    /** The core's `write` and `closeSocket` for a socket on another instance (`state.remote`). */
    write(socket: unknown, message: Uint8Array): void;
    close(socket: unknown, code: number, reason: string): void;
    /** A relayed client's socket here closed. */
    socketClosed(state: SocketState, code: number, reason: string): void;
  };
  /** Session records (cluster-records.ts). */
  readonly records: {
    changed(session: Session): void;
    gone(session: Session): void;
    writeNow(): Promise<void>;
  };
  /** Where a HELLO for a session not here goes (cluster-sessions.ts). */
  readonly sessions: {
    route(state: SocketState, hello: HelloFrame, message: Uint8Array): void;
    resumeFromLog(session: Session, state: SocketState, hello: HelloFrame): void;
  };
  /** The ordered broadcast log (cluster-log.ts). */
  readonly log: { append(broadcast: ClusterBroadcast): Promise<void> };
  /** The bus (cluster-core.ts). */
  readonly bus: {
    broadcastVolatile(broadcast: ClusterBroadcast): void;
    call(clientId: string, name: string, input: unknown, timeout: number, signal?: AbortSignal): Promise<unknown>;
    presenceOf(topic: string): Promise<number>;
    members(topic: string): Promise<ClusterMember[]>;
  };
  close(): Promise<void>;
}
