/**
 * The cluster core: several server instances act as one over any backend
 * (cluster.ts). A call for a client goes to every instance and the one whose
 * session has the client answers, the others say "miss", and when every
 * listener has missed nobody has it. Pending calls, their deadlines and
 * aborts, the holder of each call (so a call waiting for ever fails when its
 * holder dies), `members`, the sum of presence and the dispatch of relay
 * messages live here, once, for every backend and runtime. The ordered
 * broadcast log is cluster-log.ts, sessions across instances are
 * cluster-sessions.ts and relay.ts.
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
import { Deadlines } from "../engine/deadlines.ts";
import { unref } from "../engine/timers.ts";
import { ChatterError, fromWireError, toWireError, type WireError } from "../errors.ts";
import { decode, encode } from "../wire/codec.ts";
import type { ClusterBackend, ClusterBroadcast, ClusterMember, ClusterNode, ClusterStats } from "./cluster.ts";
import type { RelayMessage } from "./relay.ts";

type CallMessage =
  | { id: number; from: string; clientId: string; name: string; input: unknown; timeout: number }
  | { id: number; from: string; cancel: true }
  | { id: number; from: string; members: string };
type ReplyMessage =
  | { k: "reply"; id: number; ok: true; value: unknown }
  | { k: "reply"; id: number; ok: false; error: WireError }
  | { k: "reply"; id: number; miss: true }
  | { k: "reply"; id: number; taken: true; from: string };
type MembersMessage = { k: "members"; id: number; list: ClusterMember[] };
type DirectMessage = ReplyMessage | MembersMessage | RelayMessage;

/** How long `members` waits for every instance to answer. */
const MEMBERS_TIMEOUT_MS = 5000;

/** A call this instance made to a client elsewhere. */
interface PendingCall {
  id: number;
  clientId: string;
  name: string;
  /** Its timeout in ms, 0 for none. */
  wait: number;
  /** For the deadline clock: when it times out, 0 once settled or when it waits for ever. */
  deadline: number;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** "miss" answers so far, and how many listeners got the call (unknown until the publish returns). */
  misses: number;
  expected: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** The instance whose session has the client, once it says so: if it dies, the call fails. */
  holder: string | undefined;
}

/** A `members` query this instance made. */
interface PendingQuery {
  list: ClusterMember[];
  answers: number;
  expected: number;
  resolve: (list: ClusterMember[]) => void;
  reject: (err: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
}

const BCAST = "bcast";
const CALL = "call";
const to = (instanceId: string) => `to:${instanceId}`;

/** One server instance's membership of a cluster. */
export class Cluster {
  private readonly backend: ClusterBackend;
  private readonly node: ClusterNode;
  private readonly stats: ClusterStats;
  private readonly pending = new Map<number, PendingCall>();
  private readonly queries = new Map<number, PendingQuery>();
  private readonly deadlines = new Deadlines<PendingCall>((p) => this.fail(p, timedOut(p)));
  /** Calls from other instances running on a client here, by `from` and id, to cancel them. */
  private readonly running = new Map<string, AbortController>();
  private readonly ttlMs: number;
  private readonly heartbeat: ReturnType<typeof setInterval>;
  private nextId = 1;
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
    this.stats = stats ?? backend.stats ?? { published: 0, received: 0, lost: 0, queued: 0, resets: 0 };
    const heartbeatMs = backend.heartbeatMs ?? 2000;
    this.ttlMs = backend.presenceTtlMs ?? heartbeatMs * 3;
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
   * Calls a procedure on a client connected to another instance.
   * @param timeout - milliseconds to wait; 0 waits for ever
   * @param signal - aborting it rejects with `ABORTED` and cancels the client's handler
   * @returns the answer; rejects with `NOT_FOUND` if no instance has the client, `TIMEOUT`, `ABORTED` or `DISCONNECTED`
   */
  call(clientId: string, name: string, input: unknown, timeout: number, signal?: AbortSignal): Promise<unknown> {
    if (this.closed) return Promise.reject(new ChatterError("DISCONNECTED", `call to "${name}" failed: the cluster is closed`));
    if (signal?.aborted) return Promise.reject(aborted(name, signal));
    const id = this.nextId++;
    const wait = timeout > 0 && Number.isFinite(timeout) ? timeout : 0;
    const message: CallMessage = { id, from: this.node.instanceId, clientId, name, input, timeout: wait };
    let bytes: Uint8Array;
    try {
      bytes = encode(message);
    } catch (err) {
      return Promise.reject(new ChatterError("VALIDATION", `input of "${name}" cannot be encoded: ${(err as Error).message}`));
    }
    return new Promise((resolve, reject) => {
      const p: PendingCall = {
        id,
        clientId,
        name,
        wait,
        deadline: 0,
        resolve,
        reject,
        misses: 0,
        expected: Infinity,
        signal,
        onAbort: undefined,
        holder: undefined,
      };
      this.pending.set(id, p);
      if (wait) this.deadlines.add(p, wait);
      if (signal) {
        p.onAbort = () => this.abort(p, signal);
        signal.addEventListener("abort", p.onAbort, { once: true });
      }
      void this.publish(CALL, bytes, `call to "${name}"`).then((receivers) => this.reached(p, receivers));
    });
  }

  /** @returns the subscribers to a topic across the cluster: this instance's now, the others' as of their last heartbeat */
  async presence(topic: string): Promise<number> {
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
  private async others(): Promise<Map<string, Uint8Array>> {
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

  /**
   * @returns every connection subscribed to the topic on any instance; rejects with `TIMEOUT` if some
   *   instance does not answer within 5 s, `DISCONNECTED` if the backend cannot be reached
   */
  members(topic: string): Promise<ClusterMember[]> {
    if (this.closed) return Promise.reject(new ChatterError("DISCONNECTED", "members: the cluster is closed"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const q: PendingQuery = { list: [], answers: 0, expected: Infinity, resolve, reject, timer: undefined as never };
      q.timer = setTimeout(() => {
        this.queries.delete(id);
        reject(
          new ChatterError(
            "TIMEOUT",
            `members of "${topic}": ${q.answers} of ${q.expected} instance(s) answered within ${MEMBERS_TIMEOUT_MS} ms`,
          ),
        );
      }, MEMBERS_TIMEOUT_MS);
      unref(q.timer);
      this.queries.set(id, q);
      const ask: CallMessage = { id, from: this.node.instanceId, members: topic };
      this.backend.publish(CALL, encode(ask)).then(
        (receivers) => {
          q.expected = receivers;
          this.answered(id, q);
        },
        (err: Error) => {
          clearTimeout(q.timer);
          this.queries.delete(id);
          reject(new ChatterError("DISCONNECTED", `members of "${topic}": the cluster backend is unreachable (${err.message})`));
        },
      );
    });
  }

  private answered(id: number, q: PendingQuery): void {
    if (q.answers < q.expected || !this.queries.has(id)) return;
    clearTimeout(q.timer);
    this.queries.delete(id);
    q.resolve(q.list);
  }

  /** Leaves the cluster: pending calls fail with `DISCONNECTED`, and the backend closes. Safe to call again. */
  close(): Promise<void> {
    this.closed ??= this.leave();
    return this.closed;
  }

  private async leave(): Promise<void> {
    clearInterval(this.heartbeat);
    const cancels: Promise<number>[] = [];
    for (const p of [...this.pending.values()]) {
      this.fail(p, new ChatterError("DISCONNECTED", `call to "${p.name}" failed: the cluster is closed`));
      cancels.push(this.cancel(p));
    }
    this.deadlines.clear();
    for (const [id, q] of this.queries) {
      clearTimeout(q.timer);
      q.reject(new ChatterError("DISCONNECTED", "members: the cluster is closed"));
      this.queries.delete(id);
    }
    for (const controller of this.running.values()) controller.abort();
    this.running.clear();
    // Sent before the backend closes: a handler waiting for ever elsewhere would otherwise keep waiting.
    await Promise.all(cancels);
    await this.backend.forgetPresence([this.node.instanceId]).catch(() => {});
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
    } else if (channel === CALL) this.onCall(body as CallMessage);
    else {
      const m = body as DirectMessage;
      if (m.k === "reply") this.onReply(m);
      else if (m.k === "members") this.onMembers(m);
      else this.node.relay(m);
    }
  }

  /** The bus may have lost messages: answers to calls made here among them. Those calls fail; relays drop. */
  private interrupted(): void {
    this.node.log?.("cluster: the bus connection was interrupted");
    for (const p of [...this.pending.values()]) {
      this.fail(
        p,
        new ChatterError(
          "DISCONNECTED",
          `call to "${p.name}" on client ${p.clientId} failed: the cluster bus was interrupted (it may have run)`,
        ),
      );
      void this.cancel(p);
    }
    this.node.interrupted();
  }

  private onMembers(m: MembersMessage): void {
    const q = this.queries.get(m.id);
    if (!q) return;
    q.list.push(...m.list);
    q.answers++;
    this.answered(m.id, q);
  }

  /** A call for a client somewhere: answer it if the client is here, else say "miss". */
  private onCall(m: CallMessage): void {
    const key = `${m.from} ${m.id}`;
    if ("cancel" in m) return this.running.get(key)?.abort();
    if ("members" in m) {
      const list = this.node.members(m.members);
      void this.send(m.from, { k: "members", id: m.id, list }, `members of "${m.members}"`);
      return;
    }
    const controller = new AbortController();
    const answer = this.node.callLocal(m.clientId, m.name, m.input, { timeout: m.timeout, signal: controller.signal });
    const reply = (r: ReplyMessage) => {
      // Cancelled, or this instance is leaving: nobody waits for the answer.
      if (!controller.signal.aborted) void this.send(m.from, r, `answer to call "${m.name}"`);
    };
    if (!answer) return reply({ k: "reply", id: m.id, miss: true });
    this.running.set(key, controller);
    reply({ k: "reply", id: m.id, taken: true, from: this.node.instanceId });
    answer
      .then(
        (value) => reply({ k: "reply", id: m.id, ok: true, value }),
        (err) => reply({ k: "reply", id: m.id, ok: false, error: toWireError(err, m.name, false) }),
      )
      .finally(() => this.running.delete(key));
  }

  private onReply(r: ReplyMessage): void {
    const p = this.pending.get(r.id);
    if (!p) return; // Late: the call timed out, was aborted, or another instance answered.
    if ("miss" in r) {
      // Every instance that is not the client's says so; when all have, nobody has it.
      if (++p.misses >= p.expected) this.fail(p, notFound(p));
      return;
    }
    if ("taken" in r) {
      p.holder = r.from;
      return;
    }
    this.settle(p);
    if (r.ok) p.resolve(r.value);
    else p.reject(fromWireError(r.error));
  }

  /** The publish of a call returned how many listeners got it, this instance among them (it answers "miss" too). */
  private reached(p: PendingCall, receivers: number): void {
    if (!this.pending.has(p.id)) return;
    if (receivers === 0) return this.fail(p, new ChatterError("DISCONNECTED", `call to "${p.name}" could not reach the cluster`));
    p.expected = receivers;
    if (p.misses >= receivers) this.fail(p, notFound(p));
  }

  /** The caller gave up: fail the call here, and cancel the client's handler wherever it runs. */
  private abort(p: PendingCall, signal: AbortSignal): void {
    if (!this.pending.has(p.id)) return;
    this.fail(p, aborted(p.name, signal));
    void this.cancel(p);
  }

  /** Tells every instance that a call was given up, so the one running it cancels the client's handler. */
  private cancel(p: PendingCall): Promise<number> {
    const cancel: CallMessage = { id: p.id, from: this.node.instanceId, cancel: true };
    return this.publish(CALL, encode(cancel), `cancel of call "${p.name}"`);
  }

  private fail(p: PendingCall, err: ChatterError): void {
    this.settle(p);
    p.reject(err);
  }

  private settle(p: PendingCall): void {
    this.pending.delete(p.id);
    this.deadlines.settle(p);
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
  }

  /** Calls whose client's instance died fail: their answer cannot come, however long they may wait. */
  private async checkHolders(): Promise<void> {
    let alive: Map<string, Uint8Array>;
    try {
      alive = await this.others();
    } catch {
      return; // The backend is away; the next beat looks again.
    }
    for (const p of [...this.pending.values()]) {
      if (p.holder && p.holder !== this.node.instanceId && !alive.has(p.holder)) {
        this.fail(
          p,
          new ChatterError("DISCONNECTED", `call to "${p.name}" on client ${p.clientId} failed: the instance holding the client stopped`),
        );
      }
    }
  }

  private beat(): void {
    if ([...this.pending.values()].some((p) => p.holder)) void this.checkHolders();
    this.backend
      .putPresence(this.node.instanceId, encode(this.node.topicCounts()), this.ttlMs)
      .catch((err: Error) => this.node.log?.(`cluster: presence heartbeat failed: ${err.message}`));
  }
}

function notFound(p: PendingCall): ChatterError {
  return new ChatterError("NOT_FOUND", `no instance has client "${p.clientId}" for call "${p.name}"`);
}

function timedOut(p: PendingCall): ChatterError {
  return new ChatterError("TIMEOUT", `call to "${p.name}" on client ${p.clientId} timed out after ${p.wait} ms`);
}

/** As the engine words it (engine/peer.ts). */
function aborted(name: string, signal: AbortSignal): ChatterError {
  const why = signal.reason instanceof Error ? `: ${signal.reason.message}` : "";
  return new ChatterError("ABORTED", `call to "${name}" was aborted${why}`);
}
