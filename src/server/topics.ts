/**
 * Topics: who is subscribed to what, and fan-out. With native publish (Bun)
 * a broadcast is one `publish` per topic, and a burst of them to one topic in
 * a tick is one `publish` for the burst (see `queue`); exclusions and overlaps
 * between topics are handled by unsubscribing those few sockets for the length
 * of that one synchronous call. Without it (Node) the subscribers are looped
 * over, from an index that only holds the topic's members. A volatile
 * broadcast (typing indicators) is not logged, carries sequence number 0, and
 * skips sockets that are behind.
 */

import { ChatterError } from "../errors.ts";
import { FrameBatch } from "../wire/batch.ts";
import { MAX_FRAMES_PER_MESSAGE } from "../wire/frames.ts";
import { BroadcastLog, type LogLimits, type Subscriber, type SubscriptionChange } from "./broadcast-log.ts";
import { type Members, resized, type SlotIndex } from "./member-set.ts";
import type { SocketState } from "./socket-state.ts";
import { type TopicList, topicCount, topicsIn } from "./topic-list.ts";

export type { TopicList };

/** What topics need of a session. */
export interface Member extends Subscriber {
  /** The topics it is in, null while none; see TopicList. */
  topics: TopicList | null;
  /** The live socket, or null while the session waits for a resume. */
  readonly state: SocketState | null;
  /** Sends to this member's socket, minding backpressure. */
  send(frame: Uint8Array): void;
}

/** What topics need of the sockets, from the adapter's driver (see adapter.ts). */
export interface TopicSockets {
  /**
   * Whether a socket is behind for a volatile broadcast: anything at all waits in the runtime's buffer. A
   * typing indicator queued behind other data is stale by the time it arrives.
   */
  isBehind(state: SocketState): boolean;
  /** The runtime's native pub/sub, when it has one. */
  readonly native: {
    subscribe(state: SocketState, topic: string): void;
    unsubscribe(state: SocketState, topic: string): void;
    /** @returns false when some subscriber's copy was dropped */
    publish(topic: string, frame: Uint8Array): boolean;
  } | null;
}

/** Broadcasts gathered into one message (see `Topics.queue`) stop at this many bytes, as a session's batches do. */
const BATCH_BYTES = 64 * 1024;

/** A session in more topics than this keeps them in a Set (see TopicList). */
const SMALL_LIST = 16;

/** Subscription changes a session remembers at most, to judge old broadcasts on resume. */
const MAX_CHANGES = 1000;

/** Bounds on subscriptions, so one connection cannot grow the topic index without end. */
export interface TopicLimits {
  /** Topics one connection may be in at once. */
  maxTopicsPerConnection: number;
  /** Characters a topic name may have. */
  maxTopicLength: number;
  /** Topics with members at once, server-wide. */
  maxTopics: number;
}

export class Topics<C extends Member> {
  /** Each topic's members: a Set, or an array by slot once the topic is big (member-set.ts). */
  readonly index = new Map<string, Members<C>>();
  log: BroadcastLog<C>;
  /**
   * Members whose socket is on another instance of a cluster (relay.ts): native pub/sub cannot reach them,
   * so a broadcast sends to them one by one.
   */
  readonly relayed = new Set<C>();
  /** Called when native publish dropped a frame for some subscriber. */
  onDropped: (topic: string) => void = () => {};
  /** Called when a member joins or leaves a topic. */
  onChange: (member: C) => void = () => {};
  private readonly logLimits: LogLimits;

  private readonly limits: TopicLimits;
  readonly sockets: TopicSockets;
  /** The members' slots in the core's table of sessions, for big topics. */
  private readonly slots: SlotIndex<C>;
  /**
   * Broadcasts to one topic made back to back in this tick, waiting to go out as one message (see `queue`): the
   * topic, or null when none wait.
   */
  private queuedTopic: string | null = null;
  private readonly queued = new FrameBatch(BATCH_BYTES, MAX_FRAMES_PER_MESSAGE);
  private publishScheduled = false;
  private readonly publishLater = (): void => {
    this.publishScheduled = false;
    this.publishQueued();
  };

  constructor(logLimits: LogLimits, limits: TopicLimits, sockets: TopicSockets, slots: SlotIndex<C>) {
    this.log = new BroadcastLog(logLimits);
    this.logLimits = logLimits;
    this.limits = limits;
    this.sockets = sockets;
    this.slots = slots;
  }

  /** @returns whether `conn` is subscribed to `topic` */
  has(conn: C, topic: string): boolean {
    return this.index.get(topic)?.has(conn) ?? false;
  }

  /** Joins or leaves a topic natively, where the runtime has native pub/sub. */
  private mirror(conn: C, topic: string, join: boolean): void {
    const native = this.sockets.native;
    if (!native || !conn.state || conn.state.remote) return;
    // Broadcasts made before this change go out first, to the members they were made for.
    this.publishQueued();
    if (join) native.subscribe(conn.state, topic);
    else native.unsubscribe(conn.state, topic);
  }

  /** Adds `conn` to a topic; throws `LIMIT` past the per-connection limits. */
  subscribe(conn: C, topic: string): void {
    let members = this.index.get(topic);
    if (members?.has(conn)) return;
    this.checkLimits(conn, topic);
    members ??= new Set();
    const kept = resized(members.add(conn), this.slots);
    if (kept !== members || members.size === 1) this.index.set(topic, kept);
    const list = conn.topics;
    if (typeof list === "string") conn.topics = [list, topic];
    else if (list instanceof Set) list.add(topic);
    else if (!list?.length) conn.topics = topic;
    else if (list.length < SMALL_LIST) list.push(topic);
    else conn.topics = new Set(list).add(topic);
    this.remember(conn, topic, true);
    this.mirror(conn, topic, true);
    this.onChange(conn);
  }

  unsubscribe(conn: C, topic: string): void {
    if (!this.leave(conn, topic)) return;
    const list = conn.topics;
    // It was the only one. Empty, not null: a session that was ever in a topic stays one (cluster-node.ts #lost).
    if (typeof list === "string") conn.topics = [];
    else if (list instanceof Set) list.delete(topic);
    else if (list) {
      list[list.indexOf(topic)] = list[list.length - 1] as string;
      list.pop();
    }
    this.remember(conn, topic, false);
    this.mirror(conn, topic, false);
    this.onChange(conn);
  }

  private checkLimits(conn: C, topic: string): void {
    if (typeof topic !== "string" || topic.length === 0 || topic.length > this.limits.maxTopicLength) {
      const what = typeof topic === "string" ? `${topic.length} characters` : typeof topic;
      throw new ChatterError("LIMIT", `topic name of ${what} refused: 1 to ${this.limits.maxTopicLength} characters (maxTopicLength)`);
    }
    const max = this.limits.maxTopicsPerConnection;
    if (this.index.size >= this.limits.maxTopics && !this.index.has(topic)) {
      throw new ChatterError("LIMIT", `subscribe to a new topic refused: the server has ${this.limits.maxTopics} topics (maxTopics)`);
    }
    if (topicCount(conn.topics) >= max) {
      throw new ChatterError("LIMIT", `subscribe to "${topic}" refused: the connection is in ${max} topics (maxTopicsPerConnection)`);
    }
  }

  /** Takes `conn` out of the topic's index entry; @returns whether it was there */
  private leave(conn: C, topic: string): boolean {
    const members = this.index.get(topic);
    if (!members?.delete(conn)) return false;
    if (members.size === 0) this.index.delete(topic);
    else {
      const kept = resized(members, this.slots);
      if (kept !== members) this.index.set(topic, kept);
    }
    return true;
  }

  /**
   * Notes a change for replay on resume. Only broadcasts already in the log
   * can need it (later ones have higher sequence numbers), so with an empty
   * log there is nothing to note; nor when no broadcast went out since the
   * session began (a join in `onOpen`), since none from before is replayed to it.
   */
  private remember(conn: C, topic: string, joined: boolean): void {
    this.log.trim(conn);
    if (this.log.isEmpty) {
      // Nothing logged to judge later: after leaving, the session can only resume from here on.
      if (!joined) conn.changesFrom = Math.max(conn.changesFrom, this.log.seq);
      return;
    }
    if (this.log.seq <= conn.since) return;
    conn.changes ??= [];
    conn.changes.push([this.log.seq, topic, joined]);
    if (conn.changes.length > MAX_CHANGES) conn.changesFrom = (conn.changes.shift() as SubscriptionChange)[0];
  }

  /** Drops a closed session from every topic. */
  remove(conn: C): void {
    for (const topic of topicsIn(conn.topics)) {
      this.leave(conn, topic);
      this.mirror(conn, topic, false);
    }
    conn.topics = null;
    conn.changes = null;
  }

  /** Starts an empty log numbered from 0: the cluster's log was lost, and its numbers start again. */
  restart(): void {
    this.log = new BroadcastLog(this.logLimits);
  }

  /** Re-joins a resumed session's new socket to its topics natively. */
  rejoin(conn: C): void {
    for (const topic of topicsIn(conn.topics)) this.mirror(conn, topic, true);
  }

  /**
   * Delivers a broadcast to the union of the topics' subscribers, minus the
   * excluded, once each, and logs it for sessions that may resume.
   * @param build - makes the frame from the broadcast's sequence number
   * @param volatile - skip the log (sequence number 0) and every socket that is behind (see `TopicSockets.isBehind`)
   * @param seq - the broadcast's number when a cluster's log gave it one (the same on every instance)
   */
  broadcast(list: string[], build: (seq: number) => Uint8Array, exclude: ReadonlySet<C>, volatile = false, seq?: number): void {
    if (seq !== undefined) this.log.seq = seq;
    if (!list.some((t) => this.index.has(t))) return; // Nobody now, so nobody can resume into it either.
    // Volatile: seq 0 takes no number, so resume (judged by numbers) neither waits for it nor replays it.
    const frame = build(volatile ? 0 : (seq ?? this.log.next()));
    if (!volatile) this.log.append(list, exclude, frame);
    for (let i = 0; i < list.length; i++) {
      const topic = list[i] as string;
      const members = this.index.get(topic);
      if (!members) continue;
      const skip = volatile
        ? (c: C) => exclude.has(c) || this.seenBefore(c, list, i) || this.sockets.isBehind(c.state as SocketState)
        : (c: C) => exclude.has(c) || this.seenBefore(c, list, i);
      const native = this.sockets.native;
      if (!native) {
        for (const c of members) if (c.state && !skip(c)) c.send(frame);
        continue;
      }
      if (list.length === 1 && exclude.size === 0 && !volatile) this.queue(topic, frame);
      else {
        // In order: what waits goes out before this one.
        this.publishQueued();
        // Exclusions and overlaps: those few sockets leave the topic for the length of this one synchronous publish.
        const muted: SocketState[] = [];
        // Only the excluded can be skipped in the first topic, unless any member may be behind.
        const candidates = i === 0 && !volatile ? exclude : members;
        for (const c of candidates) if (c.state && (candidates === members || members.has(c)) && skip(c)) muted.push(c.state);
        for (const s of muted) native.unsubscribe(s, topic);
        const sent = native.publish(topic, frame);
        for (const s of muted) native.subscribe(s, topic);
        // A lost volatile frame is allowed to be lost; a socket over the limit is closed by the next broadcast that is not.
        if (!sent && !volatile) this.onDropped(topic);
      }
      // Sockets on other instances are out of native pub/sub's reach: they get it one by one.
      for (const c of this.relayed) if (members.has(c) && !skip(c)) c.send(frame);
    }
  }

  /**
   * Holds a broadcast to every member of one topic until the end of the tick, with the ones made right after
   * it to the same topic: a burst of broadcasts reaches each member as one message (PROTOCOL.md, "Framing"),
   * one native publish for the burst, not one per broadcast. Sessions batch their own frames the same way, and
   * so do broadcasts on runtimes without native pub/sub, which go through the sessions. Order holds: another
   * topic, an exclusion, a volatile broadcast or a change of membership first sends what waits, and so does a
   * session before its own frames (Session.flush), so each member gets everything in the order it was made.
   */
  private queue(topic: string, frame: Uint8Array): void {
    if (this.queuedTopic !== topic) {
      this.publishQueued();
      this.queuedTopic = topic;
    }
    const full = this.queued.add(frame);
    if (full) this.publish(topic, full);
    if (!this.publishScheduled) {
      this.publishScheduled = true;
      queueMicrotask(this.publishLater);
    }
  }

  /** Sends the broadcasts waiting in `queued`, if any. */
  publishQueued(): void {
    const topic = this.queuedTopic;
    if (topic === null) return;
    this.queuedTopic = null;
    const message = this.queued.take();
    if (message) this.publish(topic, message);
  }

  private publish(topic: string, message: Uint8Array): void {
    // A socket over the limit is closed as a slow consumer (onDropped), and resumes on a new one.
    if (!this.sockets.native?.publish(topic, message)) this.onDropped(topic);
  }

  /** @returns whether `c` is in one of the topics before `list[i]`, so got the broadcast already */
  private seenBefore(c: C, list: string[], i: number): boolean {
    for (let j = 0; j < i; j++) if (this.has(c, list[j] as string)) return true;
    return false;
  }
}
