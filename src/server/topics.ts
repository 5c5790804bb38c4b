/**
 * Topics: who is subscribed to what, and fan-out. With native publish (Bun)
 * a broadcast is one `publish` per topic; exclusions and overlaps between
 * topics are handled by unsubscribing those few sockets for the length of
 * that one synchronous call. Without it (Node) the subscribers are looped
 * over, from an index that only holds the topic's members.
 */
import { BroadcastLog, type LogLimits, type Subscriber, type SubscriptionChange } from "./broadcast-log.ts";
import type { Publisher, ServerSocket } from "./socket.ts";

/** What topics need of a connection. */
export interface Member extends Subscriber {
  readonly topics: Set<string>;
  changes: SubscriptionChange[];
  changesFrom: number;
  /** The live socket, or null while the session waits for a resume. */
  readonly socket: ServerSocket | null;
  /** Sends to this member's socket, minding backpressure. */
  send(frame: Uint8Array): void;
}

/** Subscription changes a session remembers at most, to judge old broadcasts on resume. */
const MAX_CHANGES = 1000;

export class Topics<C extends Member> {
  readonly index = new Map<string, Set<C>>();
  readonly log: BroadcastLog<C>;
  publisher: Publisher | null = null;
  /** Called when native publish dropped a frame for some subscriber. */
  onDropped: (topic: string) => void = () => {};

  constructor(limits: LogLimits) {
    this.log = new BroadcastLog(limits);
  }

  subscribe(conn: C, topic: string): void {
    if (conn.topics.has(topic)) return;
    conn.topics.add(topic);
    let members = this.index.get(topic);
    if (!members) {
      members = new Set();
      this.index.set(topic, members);
    }
    members.add(conn);
    this.remember(conn, topic, true);
    conn.socket?.subscribe(topic);
  }

  unsubscribe(conn: C, topic: string): void {
    if (!conn.topics.delete(topic)) return;
    const members = this.index.get(topic);
    members?.delete(conn);
    if (members?.size === 0) this.index.delete(topic);
    this.remember(conn, topic, false);
    conn.socket?.unsubscribe(topic);
  }

  private remember(conn: C, topic: string, joined: boolean): void {
    conn.changes.push([this.log.seq, topic, joined]);
    this.log.trim(conn);
    if (conn.changes.length > MAX_CHANGES) conn.changesFrom = (conn.changes.shift() as SubscriptionChange)[0];
  }

  /** Drops a closed session from every topic. */
  remove(conn: C): void {
    for (const topic of [...conn.topics]) this.unsubscribe(conn, topic);
  }

  /** Re-joins a resumed session's new socket to its topics natively. */
  rejoin(conn: C): void {
    for (const topic of conn.topics) conn.socket?.subscribe(topic);
  }

  /**
   * Delivers a broadcast to the union of the topics' subscribers, minus the
   * excluded, once each, and logs it for sessions that may resume.
   * @param build - makes the frame from the broadcast's sequence number
   */
  broadcast(list: string[], build: (seq: number) => Uint8Array, exclude: ReadonlySet<C>): void {
    if (!list.some((t) => this.index.has(t))) return; // Nobody now, so nobody can resume into it either.
    const frame = build(this.log.next());
    this.log.append(list, exclude, frame);
    for (let i = 0; i < list.length; i++) {
      const topic = list[i] as string;
      const members = this.index.get(topic);
      if (!members) continue;
      const skip = (c: C) => exclude.has(c) || seenBefore(c, list, i);
      if (!this.publisher) {
        for (const c of members) if (c.socket && !skip(c)) c.send(frame);
        continue;
      }
      const muted: ServerSocket[] = [];
      const candidates = i === 0 ? exclude : members;
      for (const c of candidates) if (c.socket && members.has(c) && skip(c)) muted.push(c.socket);
      for (const s of muted) s.unsubscribe(topic);
      const sent = this.publisher.publish(topic, frame);
      for (const s of muted) s.subscribe(topic);
      if (sent === 0) this.onDropped(topic);
    }
  }
}

function seenBefore(c: { topics: Set<string> }, list: string[], i: number): boolean {
  for (let j = 0; j < i; j++) if (c.topics.has(list[j] as string)) return true;
  return false;
}
