/** Builds the local server as the cluster core sees it (a `ClusterNode`, cluster.ts), so the cluster core needs no server internals. */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { ChatterError } from "../errors.ts";
import type { Proc } from "../proc.ts";
import { encode } from "../wire/codec.ts";
import { CloseCode } from "../wire/frames.ts";
import { type ClusterBackend, type ClusterMember, type ClusterNode, type ClusterStats, emptyStats } from "./cluster.ts";
import { Cluster } from "./cluster-core.ts";
import { ClusterLog } from "./cluster-log.ts";
import { SessionRecords } from "./cluster-records.ts";
import { SessionRouter } from "./cluster-sessions.ts";
import type { ServerConnection } from "./connection.ts";
import type { ServerCore } from "./core.ts";
import { Relays } from "./relay.ts";
import type { Session } from "./session.ts";

/** Accepts anything: calls relayed for another instance were checked there, and are checked there on return. */
const PASS: StandardSchemaV1 = { "~standard": { version: 1, vendor: "chatter", validate: (value) => ({ value }) } };

/** @returns the session of a client on this instance, a live one first */
function localSession(core: ServerCore, clientId: string): Session | undefined {
  let waiting: Session | undefined;
  for (const s of core.sessions.values()) {
    if (s.clientId !== clientId || s.movedTo) continue; // One handing itself over is the other instance's now.
    if (s.state) return s;
    waiting ??= s;
  }
  return waiting;
}

/** @returns the connection of a client on this instance, a live one first */
export function localClient(core: ServerCore, clientId: string): ServerConnection | undefined {
  return localSession(core, clientId)?.connection as ServerConnection | undefined;
}

/** Milliseconds records and log entries outlive what they describe, at least. */
const MIN_TTL_MS = 60_000;

/** An instance's part in a cluster: the bus (calls, presence, members), the broadcast log, relays and session records. */
export class ClusterMembership {
  readonly bus: Cluster;
  readonly log: ClusterLog;
  readonly relays: Relays;
  readonly records: SessionRecords;
  readonly sessions: SessionRouter;
  readonly stats: ClusterStats;
  #closed: Promise<void> | undefined;

  constructor(core: ServerCore, backend: ClusterBackend) {
    const ttl = Math.max(2 * (core.options.resumeWindow ?? 30_000), MIN_TTL_MS);
    this.stats = backend.stats ?? emptyStats();
    this.relays = new Relays(core, (instance, m) => this.bus.sendTo(instance, m));
    this.bus = new Cluster(backend, clusterNode(core, this), this.stats);
    this.log = new ClusterLog(
      backend,
      {
        instanceId: core.instanceId,
        log: core.log,
        report: (err) => core.report(err),
        deliver: (b, seq) => core.deliver(b, seq),
        lost: (why, all) => this.#lost(core, why, all),
      },
      this.stats,
      ttl,
    );
    this.records = new SessionRecords(core, backend, this.log, ttl);
    const isAlive = (id: string) => this.bus.isAlive(id);
    this.sessions = new SessionRouter(core, backend, this.log, this.relays, this.records, isAlive, this.stats, this.bus.presenceTtlMs);
    const router = this.sessions;
    this.relays.sessions = {
      accept: (hello, from) => router.accept(hello, from),
      handedOver: (hello, sent) => router.handedOver(hello, sent),
      moved: (state, hello, bytes, from) => router.moved(state, hello, bytes, from),
      gone: (state, hello) => router.gone(state, hello),
    };
  }

  /**
   * Broadcasts were lost before this instance read them from the cluster log: the sessions that may have
   * needed them are reset (closed as unresumable), never left with a silent gap.
   * @param all - the whole log was lost: numbering starts again, so every session resets and the local log empties
   */
  #lost(core: ServerCore, why: string, all: boolean): void {
    core.report(new ChatterError("DISCONNECTED", `cluster: ${why}; resetting the sessions that may have missed broadcasts`));
    let resets = 0;
    for (const session of [...core.sessions.values()]) {
      if (!all && session.topics === null) continue; // Never in a topic (a lone topic named "" is a falsy list).
      resets++;
      core.endSession(session, CloseCode.Unresumable, "broadcasts it may have missed were lost by the cluster");
    }
    if (all) core.topics.restart();
    this.stats.resets += resets;
  }

  /** Resolves once this instance listens on the bus and reads the log. */
  get ready(): Promise<void> {
    return Promise.all([this.bus.listening, this.log.whenReading]).then(() => {});
  }

  /** Leaves the cluster: pending calls fail with `DISCONNECTED`, relays drop, and the backend closes. Safe to call again. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.records.close();
      this.relays.clear();
      this.log.close();
      await this.bus.close();
    })();
    return this.#closed;
  }
}

/**
 * @param core - the local server core
 * @returns the local server as the cluster core talks to it
 */
function clusterNode(core: ServerCore, cluster: ClusterMembership): ClusterNode {
  return {
    instanceId: core.instanceId,
    log: core.log,
    deliver: (b, seq) => core.deliver(b, seq),
    report: (err) => core.report(err),
    relay: (m) => cluster.relays.receive(m),
    interrupted: () => cluster.relays.interrupted(),
    callLocal(clientId, name, input, options) {
      const session = localSession(core, clientId);
      if (!session) return undefined;
      const relay: Proc = { name, takes: PASS, returns: PASS, yields: null, timeout: options.timeout };
      return session.peer.call(relay, input, options);
    },
    topicCounts() {
      const counts: Record<string, number> = {};
      for (const [topic, members] of core.topics.index) counts[topic] = members.size;
      return counts;
    },
    members(topic) {
      const out: ClusterMember[] = [];
      for (const s of core.topics.index.get(topic) ?? []) {
        out.push({ clientId: s.clientId, sessionId: s.sessionId, data: plain(s.data), instance: core.instanceId });
      }
      return out;
    },
  };
}

/** @returns the value if it can cross the cluster, else undefined */
function plain(data: unknown): unknown {
  try {
    encode(data);
    return data;
  } catch {
    return undefined;
  }
}
