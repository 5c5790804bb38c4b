/** The local server as a cluster backend sees it (see cluster.ts). */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { DEFAULT_TIMEOUT } from "../engine/peer.ts";
import type { Proc } from "../proc.ts";
import type { ClusterNode } from "./cluster.ts";
import type { ServerConnection } from "./connection.ts";
import type { ServerCore } from "./core.ts";

/** Accepts anything: calls relayed for another instance were checked there, and are checked there on return. */
const PASS: StandardSchemaV1 = { "~standard": { version: 1, vendor: "chatter", validate: (value) => ({ value }) } };

/** @returns the connection of a client on this instance, a live one first */
export function localClient<TData>(core: ServerCore<TData>, clientId: string): ServerConnection<TData> | undefined {
  let waiting: ServerConnection<TData> | undefined;
  for (const c of core.connections) {
    if (c.clientId !== clientId) continue;
    if (c.isConnected) return c;
    waiting ??= c;
  }
  return waiting;
}

/**
 * @param core - the local server core
 * @returns the local server as a cluster backend talks to it
 */
export function clusterNode<TData>(core: ServerCore<TData>): ClusterNode {
  return {
    instanceId: core.instanceId,
    log: core.log,
    deliver: (b) => core.deliver(b),
    report: (err) => core.report(err),
    callLocal(clientId, name, input, timeout) {
      const conn = localClient(core, clientId);
      if (!conn) return undefined;
      const relay: Proc = { name, takes: PASS, returns: PASS, timeout: timeout || DEFAULT_TIMEOUT };
      return conn.peer.call(relay, input);
    },
    topicCounts() {
      const counts: Record<string, number> = {};
      for (const [topic, members] of core.topics.index) counts[topic] = members.size;
      return counts;
    },
  };
}
