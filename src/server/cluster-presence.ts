/**
 * Presence: each instance's subscriber counts in the backend, refreshed by a
 * heartbeat and expiring without one. It sums `server.presence(topic)`, and it
 * is how the cluster knows an instance died: its entry expired.
 */
import { decode, encode } from "../wire/codec.ts";
import type { ClusterBackend, ClusterNode } from "./cluster.ts";

export class Presence {
  constructor(
    private readonly backend: ClusterBackend,
    private readonly node: ClusterNode,
    /** How long an entry lives without a heartbeat. */
    private readonly ttlMs: number,
  ) {}

  /** Stores this instance's counts again. */
  beat(): void {
    this.backend
      .putPresence(this.node.instanceId, encode(this.node.topicCounts()), this.ttlMs)
      .catch((err: Error) => this.node.log?.(`cluster: presence heartbeat failed: ${err.message}`));
  }

  /** @returns the subscribers to a topic across the cluster: this instance's now, the others' as of their last heartbeat */
  async count(topic: string): Promise<number> {
    let total = this.node.topicCounts()[topic] ?? 0;
    for (const value of (await this.others()).values()) total += (decode(value) as Record<string, number>)[topic] ?? 0;
    return total;
  }

  /** @returns whether an instance's presence is current (it beat within its time to live) */
  async isAlive(instance: string): Promise<boolean> {
    if (instance === this.node.instanceId) return true;
    return (await this.others()).has(instance);
  }

  /** @returns the presence of every other live instance; expired ones are forgotten */
  async others(): Promise<Map<string, Uint8Array>> {
    const entries = await this.backend.readPresence();
    const live = new Map<string, Uint8Array>();
    const gone: string[] = [];
    for (const [id, value] of entries) {
      if (id === this.node.instanceId) continue;
      if (value) live.set(id, value);
      else gone.push(id); // Its presence expired: it died without leaving.
    }
    if (gone.length) await this.backend.forgetPresence(gone);
    return live;
  }

  /** Removes this instance's entry as it leaves, so the others know at once. */
  leave(): Promise<void> {
    return this.backend.forgetPresence([this.node.instanceId]).catch(() => {});
  }
}
