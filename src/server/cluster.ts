/**
 * The contract between a server and a cluster backend (such as chatter/redis)
 * that makes several server instances act as one: broadcasts reach every
 * instance, calls reach a client wherever it is connected, and presence is
 * counted across instances. Without a backend nothing here runs.
 */
import type { WireError } from "../errors.ts";

/** A broadcast as it travels between instances. Exclusions are by session id, which is unique cluster-wide. */
export interface ClusterBroadcast {
  /** The instance that sent it; it has already delivered it to its own connections. */
  origin: string;
  topics: string[];
  name: string;
  input: unknown;
  excludeSessions: string[];
  /** Not logged for replay, and skipped for sockets that are behind (`broadcast(..., { volatile: true })`). */
  volatile?: boolean;
}

/** What a backend may ask of the local server. */
export interface ClusterNode {
  /** This instance's id, unique in the cluster. */
  readonly instanceId: string;
  /** Delivers a broadcast from another instance to the local subscribers. */
  deliver(broadcast: ClusterBroadcast): void;
  /**
   * Calls a procedure on a client connected here.
   * @returns the answer, or `undefined` if the client is not connected to this instance
   */
  callLocal(clientId: string, name: string, input: unknown, timeout: number): Promise<unknown> | undefined;
  /** Subscribers per topic on this instance, for presence. */
  topicCounts(): Record<string, number>;
  /** Reports trouble the backend meets (lost broadcasts, Redis errors). */
  report(error: unknown): void;
  log: ((msg: string) => void) | undefined;
}

/** A cluster backend. */
export interface ClusterBackend {
  /** Called once, when the server is created. */
  start(node: ClusterNode): void;
  /** Sends a broadcast to the other instances. */
  publish(broadcast: ClusterBroadcast): void;
  /** Calls a procedure on a client connected to another instance; rejects with `NOT_FOUND` if none has it. */
  callRemote(clientId: string, name: string, input: unknown, timeout: number): Promise<unknown>;
  /** Subscribers to a topic across the cluster. */
  presence(topic: string): Promise<number>;
  /** Leaves the cluster. */
  close(): Promise<void>;
}

/** An answer to a remote call, as it travels back. */
export type ClusterReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: WireError }
  | { id: number; miss: true };
