/**
 * The cluster core: several server instances act as one over any backend
 * (cluster.ts). This file joins the bus and routes what arrives on it: calls
 * for clients (cluster-calls.ts), `members` questions (cluster-members.ts),
 * volatile broadcasts and relay messages (relay.ts); it beats presence
 * (cluster-presence.ts) and leaves. The ordered broadcast log is
 * cluster-log.ts, sessions across instances cluster-sessions.ts. All of it
 * lives once, for every backend and runtime.
 *
 * Bus messages (MessagePack, wire/codec.ts), one heading per channel:
 * - `bcast`: a volatile {@link ClusterBroadcast} (the others go through the log).
 * - `call`: `{ id, from, clientId, name, input, timeout }`, a call for a client somewhere;
 *   `{ id, from, cancel: true }`, its caller gave up (aborted, or left the cluster): cancel the handler;
 *   `{ id, from, members: topic }`, who is subscribed to a topic.
 * - `to:<instanceId>`, for one instance: `{ k: "reply", id, ok: true, value }`, `{ k: "reply", id, ok: false, error }`,
 *   `{ k: "reply", id, miss: true }` or `{ k: "reply", id, taken: true }` (the client is here; the answer follows);
 *   `{ k: "members", id, list }`; and the relay messages of relay.ts.
 */
import { unref } from "../engine/timers.ts";
import { ChatterError } from "../errors.ts";
import { decode, encode } from "../wire/codec.ts";
import type { RelayMessage } from "./cluster.ts";
import {
  type ClusterBackend,
  type ClusterBroadcast,
  type ClusterMember,
  type ClusterNode,
  type ClusterStats,
  emptyStats,
} from "./cluster.ts";
import { type CallMessage, RemoteCalls, type ReplyMessage } from "./cluster-calls.ts";
import { MemberQueries, type MembersMessage } from "./cluster-members.ts";
import { Presence } from "./cluster-presence.ts";

type DirectMessage = ReplyMessage | MembersMessage | RelayMessage;

const BCAST = "bcast";
const CALL = "call";
const to = (instanceId: string) => `to:${instanceId}`;
/** The key an instance leaving on purpose (`server.close()`) leaves behind. */
export const leftKey = (instanceId: string) => `left:${instanceId}`;

/** One server instance's membership of a cluster. */
export class Cluster {
  private readonly backend: ClusterBackend;
  private readonly node: ClusterNode;
  private readonly stats: ClusterStats;
  private readonly calls: RemoteCalls;
  private readonly queries: MemberQueries;
  private readonly presence: Presence;
  private readonly heartbeat: ReturnType<typeof setInterval>;
  /** How long an instance's presence lives without a heartbeat. */
  readonly presenceTtlMs: number;
  private closed: Promise<void> | undefined;
  /** Resolves once this instance listens on the bus. */
  readonly listening: Promise<void>;

  /**
   * Joins the cluster: listens on this instance's channels and starts the presence heartbeat.
   * @param backend - the bus the instances share
   * @param node - the local server
   */
  constructor(backend: ClusterBackend, node: ClusterNode, stats?: ClusterStats) {
    this.backend = backend;
    this.node = node;
    this.stats = stats ?? backend.stats ?? emptyStats();
    const heartbeatMs = backend.heartbeatMs ?? 2000;
    this.presenceTtlMs = backend.presenceTtlMs ?? heartbeatMs * 3;
    this.presence = new Presence(backend, node, this.presenceTtlMs);
    this.calls = new RemoteCalls(node, {
      call: (bytes, what) => this.publish(CALL, bytes, what),
      reply: (instance, message, what) => this.send(instance, message, what),
    });
    this.queries = new MemberQueries((id, topic) => {
      const ask: CallMessage = { id, from: node.instanceId, members: topic };
      return backend.publish(CALL, encode(ask));
    });
    this.listening = backend
      .subscribe(
        [BCAST, CALL, to(node.instanceId)],
        (channel, bytes) => this.receive(channel, bytes),
        () => this.interrupted(),
      )
      .catch((err) => node.report(err));
    this.beat();
    this.heartbeat = setInterval(() => this.beat(), heartbeatMs);
    unref(this.heartbeat);
  }

  /** Sends a volatile broadcast, already delivered here, to the other instances; a lost one is counted and reported. */
  broadcastVolatile(b: ClusterBroadcast): void {
    void this.publish(BCAST, encode(b), `broadcast of "${b.name}"`);
  }

  /**
   * Sends a message to one instance's own channel.
   * @returns how many got it: 0 when that instance does not listen (gone, or cut off); rejects on an outage
   */
  sendTo(instance: string, message: DirectMessage): Promise<number> {
    if (this.closed) return Promise.resolve(0);
    return this.backend.publish(to(instance), encode(message));
  }

  /**
   * Calls a procedure on a client whose session lives on another instance (cluster-calls.ts).
   * @param timeout - milliseconds to wait; 0 waits for ever
   * @param signal - aborting it rejects with `ABORTED` and cancels the client's handler
   * @returns the answer; rejects with `NOT_FOUND` if no instance has the client, `TIMEOUT`, `ABORTED` or `DISCONNECTED`
   */
  call(clientId: string, name: string, input: unknown, timeout: number, signal?: AbortSignal): Promise<unknown> {
    if (this.closed) return Promise.reject(new ChatterError("DISCONNECTED", `call to "${name}" failed: the cluster is closed`));
    return this.calls.call(clientId, name, input, timeout, signal);
  }

  /** @returns the subscribers to a topic across the cluster: this instance's now, the others' as of their last heartbeat */
  presenceOf(topic: string): Promise<number> {
    return this.presence.count(topic);
  }

  /** @returns whether an instance's presence is current (it beat within its time to live) */
  isAlive(instance: string): Promise<boolean> {
    return this.presence.isAlive(instance);
  }

  /** @returns every connection subscribed to the topic on any instance (cluster-members.ts) */
  members(topic: string): Promise<ClusterMember[]> {
    if (this.closed) return Promise.reject(new ChatterError("DISCONNECTED", "members: the cluster is closed"));
    return this.queries.members(topic);
  }

  /** Leaves the cluster: pending calls fail with `DISCONNECTED`, and the backend closes. Safe to call again. */
  close(): Promise<void> {
    this.closed ??= this.leave();
    return this.closed;
  }

  private async leave(): Promise<void> {
    clearInterval(this.heartbeat);
    const cancels = this.calls.close();
    this.queries.close();
    // Sent before the backend closes: a handler waiting for ever elsewhere would otherwise keep waiting.
    await cancels;
    await this.presence.leave();
    // Said out loud, so the others take this instance's sessions over at once rather than after a silence.
    await this.backend.put(leftKey(this.node.instanceId), new Uint8Array([1]), 10 * this.presenceTtlMs).catch(() => {});
    await this.backend.close();
  }

  /** Sends a message; on failure counts and reports it, so nothing is dropped silently. @returns the listeners reached, 0 on failure */
  private publish(channel: string, message: Uint8Array, what: string): Promise<number> {
    return this.backend.publish(channel, message).then(
      (receivers) => {
        this.stats.published++;
        return receivers;
      },
      (err: unknown) => {
        this.stats.lost++;
        const why = err instanceof Error ? err.message : String(err);
        this.node.report(
          new ChatterError("DISCONNECTED", `cluster: ${what} lost, backend unreachable (${why}); ${this.stats.lost} lost so far`),
        );
        return 0;
      },
    );
  }

  /** Sends a message to one instance, counted and reported if lost. */
  private send(instance: string, message: DirectMessage, what: string): Promise<number> {
    return this.publish(to(instance), encode(message), what);
  }

  private receive(channel: string, bytes: Uint8Array): void {
    let body: unknown;
    try {
      body = decode(bytes);
    } catch (err) {
      return this.node.report(new ChatterError("PROTOCOL", `cluster: undecodable message on ${channel}: ${(err as Error).message}`));
    }
    this.stats.received++;
    if (channel === BCAST) {
      const b = body as ClusterBroadcast;
      if (b.origin !== this.node.instanceId) this.node.deliver(b, 0);
    } else if (channel === CALL) {
      const m = body as CallMessage;
      if (!("members" in m)) return this.calls.onCall(m);
      const list = this.node.members(m.members);
      void this.send(m.from, { k: "members", id: m.id, list }, `members of "${m.members}"`);
    } else {
      const m = body as DirectMessage;
      if (m.k === "reply") this.calls.onReply(m);
      else if (m.k === "members") this.queries.answer(m);
      else this.node.relay(m);
    }
  }

  /** The bus may have lost messages: answers to calls made here among them. Those calls fail; relays drop. */
  private interrupted(): void {
    this.node.log?.("cluster: the bus connection was interrupted");
    this.calls.interrupted();
    this.node.interrupted();
  }

  private beat(): void {
    if (this.calls.held) {
      // A call held by an instance that died cannot be answered, however long it may wait.
      this.presence.others().then(
        (alive) => this.calls.checkHolders(alive),
        () => {}, // The backend is away; the next beat looks again.
      );
    }
    this.presence.beat();
  }
}
