/**
 * The cluster core: several server instances act as one over any backend that
 * is a bus (cluster.ts). Broadcasts go to every instance; a call for a client
 * goes to all of them and the one holding the client answers, the others say
 * "miss", and when every listener has missed nobody has it. Pending calls,
 * their deadlines and aborts, the encoding of messages and the sum of presence
 * live here, once, for every backend and runtime.
 *
 * Messages (MessagePack, wire/codec.ts), one heading per channel:
 * - `bcast`: a {@link ClusterBroadcast}, from the instance that delivered it locally.
 * - `call`: `{ id, from, clientId, name, input, timeout }`, a call for a client somewhere;
 *   `{ id, from, cancel: true }`, its caller gave up (aborted, or left the cluster): cancel the handler.
 * - `reply:<instanceId>`: `{ id, ok: true, value }`, `{ id, ok: false, error }` or `{ id, miss: true }`.
 */
import { Deadlines } from "../engine/deadlines.ts";
import { unref } from "../engine/timers.ts";
import { ChatterError, fromWireError, toWireError, type WireError } from "../errors.ts";
import { decode, encode } from "../wire/codec.ts";
import type { ClusterBackend, ClusterBroadcast, ClusterNode, ClusterStats } from "./cluster.ts";

type CallMessage =
  | { id: number; from: string; clientId: string; name: string; input: unknown; timeout: number }
  | { id: number; from: string; cancel: true };
type ReplyMessage = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError } | { id: number; miss: true };

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
}

const BCAST = "bcast";
const CALL = "call";
const replyTo = (instanceId: string) => `reply:${instanceId}`;

/** One server instance's membership of a cluster. */
export class Cluster {
  private readonly backend: ClusterBackend;
  private readonly node: ClusterNode;
  private readonly stats: ClusterStats;
  private readonly pending = new Map<number, PendingCall>();
  private readonly deadlines = new Deadlines<PendingCall>((p) => this.fail(p, timedOut(p)));
  /** Calls from other instances running on a client here, by `from` and id, to cancel them. */
  private readonly running = new Map<string, AbortController>();
  private readonly ttlMs: number;
  private readonly heartbeat: ReturnType<typeof setInterval>;
  private nextId = 1;
  private closed: Promise<void> | undefined;

  /**
   * Joins the cluster: listens on this instance's channels and starts the presence heartbeat.
   * @param backend - the bus the instances share
   * @param node - the local server
   */
  constructor(backend: ClusterBackend, node: ClusterNode) {
    this.backend = backend;
    this.node = node;
    this.stats = backend.stats ?? { published: 0, received: 0, lost: 0 };
    const heartbeatMs = backend.heartbeatMs ?? 2000;
    this.ttlMs = backend.presenceTtlMs ?? heartbeatMs * 3;
    backend
      .subscribe([BCAST, CALL, replyTo(node.instanceId)], (channel, bytes) => this.receive(channel, bytes))
      .catch((err) => node.report(err));
    this.beat();
    this.heartbeat = setInterval(() => this.beat(), heartbeatMs);
    unref(this.heartbeat);
  }

  /** Sends a broadcast, already delivered here, to the other instances; a lost one is counted and reported. */
  broadcast(b: ClusterBroadcast): void {
    void this.publish(BCAST, encode(b), `broadcast of "${b.name}"`);
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
    const entries = await this.backend.readPresence();
    let total = this.node.topicCounts()[topic] ?? 0;
    const gone: string[] = [];
    for (const [id, value] of entries) {
      if (id === this.node.instanceId) continue;
      if (value) total += (decode(value) as Record<string, number>)[topic] ?? 0;
      else gone.push(id); // Its presence expired: it died without leaving.
    }
    if (gone.length) await this.backend.forgetPresence(gone);
    return total;
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
      if (b.origin !== this.node.instanceId) this.node.deliver(b);
    } else if (channel === CALL) this.onCall(body as CallMessage);
    else this.onReply(body as ReplyMessage);
  }

  /** A call for a client somewhere: answer it if the client is here, else say "miss". */
  private onCall(m: CallMessage): void {
    const key = `${m.from} ${m.id}`;
    if ("cancel" in m) return this.running.get(key)?.abort();
    const controller = new AbortController();
    const answer = this.node.callLocal(m.clientId, m.name, m.input, { timeout: m.timeout, signal: controller.signal });
    const reply = (r: ReplyMessage) => {
      // Cancelled, or this instance is leaving: nobody waits for the answer.
      if (!controller.signal.aborted) void this.publish(replyTo(m.from), encode(r), `answer to call "${m.name}"`);
    };
    if (!answer) return reply({ id: m.id, miss: true });
    this.running.set(key, controller);
    answer
      .then(
        (value) => reply({ id: m.id, ok: true, value }),
        (err) => reply({ id: m.id, ok: false, error: toWireError(err, m.name, false) }),
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

  private beat(): void {
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
