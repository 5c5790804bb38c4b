/** Builds the local server as the cluster core sees it (a `ClusterNode`, cluster.ts), so the cluster core needs no server internals. */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import type { Proc } from "../proc.ts";
import type { ClusterNode } from "./cluster.ts";
import type { ServerConnection } from "./connection.ts";
import type { ServerCore } from "./core.ts";
import type { Session } from "./session.ts";

/** Accepts anything: calls relayed for another instance were checked there, and are checked there on return. */
const PASS: StandardSchemaV1 = { "~standard": { version: 1, vendor: "chatter", validate: (value) => ({ value }) } };

/** @returns the session of a client on this instance, a live one first */
function localSession(core: ServerCore, clientId: string): Session | undefined {
  let waiting: Session | undefined;
  for (const s of core.sessions.values()) {
    if (s.clientId !== clientId) continue;
    if (s.state) return s;
    waiting ??= s;
  }
  return waiting;
}

/** @returns the connection of a client on this instance, a live one first */
export function localClient(core: ServerCore, clientId: string): ServerConnection | undefined {
  return localSession(core, clientId)?.connection as ServerConnection | undefined;
}

/**
 * @param core - the local server core
 * @returns the local server as the cluster core talks to it
 */
export function clusterNode(core: ServerCore): ClusterNode {
  return {
    instanceId: core.instanceId,
    log: core.log,
    deliver: (b) => core.deliver(b),
    report: (err) => core.report(err),
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
  };
}
