/**
 * Calls for clients whose sessions live on other instances (`server.callClient`), both ways: the calls this
 * instance makes, with their deadlines, aborts and holders, and the calls other instances make to clients
 * here. A call goes to every instance; the one whose session has the client says "taken" and later answers,
 * the others say "miss", and when every listener has missed nobody has it.
 */
import { Deadlines } from "../engine/deadlines.ts";
import { ChatterError, fromWireError, toWireError, type WireError } from "../errors.ts";
import { encode } from "../wire/codec.ts";
import type { ClusterNode } from "./cluster.ts";

export type CallMessage =
  | { id: number; from: string; clientId: string; name: string; input: unknown; timeout: number }
  | { id: number; from: string; cancel: true }
  | { id: number; from: string; members: string };
export type ReplyMessage =
  | { k: "reply"; id: number; ok: true; value: unknown }
  | { k: "reply"; id: number; ok: false; error: WireError }
  | { k: "reply"; id: number; miss: true }
  | { k: "reply"; id: number; taken: true; from: string };

/** How calls reach the other instances: each resolves to how many listeners got it, 0 when it could not be sent. */
export interface CallsBus {
  /** To every instance. */
  call(bytes: Uint8Array, what: string): Promise<number>;
  /** To the instance that made a call. */
  reply(instance: string, message: ReplyMessage, what: string): Promise<number>;
}

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

export class RemoteCalls {
  private readonly pending = new Map<number, PendingCall>();
  private readonly deadlines = new Deadlines<PendingCall>((p) => this.fail(p, timedOut(p)));
  /** Calls from other instances running on a client here, by `from` and id, to cancel them. */
  private readonly running = new Map<string, AbortController>();
  private nextId = 1;

  constructor(
    private readonly node: ClusterNode,
    private readonly bus: CallsBus,
  ) {}

  /** Whether some call waits on an instance that said it has the client (the heartbeat then checks it lives). */
  get held(): boolean {
    for (const p of this.pending.values()) if (p.holder) return true;
    return false;
  }

  /**
   * Calls a procedure on a client connected to another instance.
   * @param timeout - milliseconds to wait; 0 waits for ever
   * @param signal - aborting it rejects with `ABORTED` and cancels the client's handler
   * @returns the answer; rejects with `NOT_FOUND` if no instance has the client, `TIMEOUT`, `ABORTED` or `DISCONNECTED`
   */
  call(clientId: string, name: string, input: unknown, timeout: number, signal?: AbortSignal): Promise<unknown> {
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
      void this.bus.call(bytes, `call to "${name}"`).then((receivers) => this.reached(p, receivers));
    });
  }

  /** A call for a client somewhere: answer it if the client is here, else say "miss"; or a cancel. */
  onCall(m: Exclude<CallMessage, { members: string }>): void {
    const key = `${m.from} ${m.id}`;
    if ("cancel" in m) return this.running.get(key)?.abort();
    const controller = new AbortController();
    const answer = this.node.callLocal(m.clientId, m.name, m.input, { timeout: m.timeout, signal: controller.signal });
    const reply = (r: ReplyMessage) => {
      // Cancelled, or this instance is leaving: nobody waits for the answer.
      if (!controller.signal.aborted) void this.bus.reply(m.from, r, `answer to call "${m.name}"`);
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

  onReply(r: ReplyMessage): void {
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
    return this.bus.call(encode(cancel), `cancel of call "${p.name}"`);
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
  checkHolders(alive: ReadonlyMap<string, unknown>): void {
    for (const p of [...this.pending.values()]) {
      if (p.holder && p.holder !== this.node.instanceId && !alive.has(p.holder)) {
        this.fail(
          p,
          new ChatterError("DISCONNECTED", `call to "${p.name}" on client ${p.clientId} failed: the instance holding the client stopped`),
        );
      }
    }
  }

  /** The bus may have lost their answers: every call waiting fails, and is cancelled where it runs. */
  interrupted(): void {
    for (const p of [...this.pending.values()]) {
      const why = `call to "${p.name}" on client ${p.clientId} failed: the cluster bus was interrupted (it may have run)`;
      this.fail(p, new ChatterError("DISCONNECTED", why));
      void this.cancel(p);
    }
  }

  /** Leaves: calls waiting fail with `DISCONNECTED` and are cancelled where they run; calls running here are aborted. */
  close(): Promise<unknown> {
    const cancels: Promise<number>[] = [];
    for (const p of [...this.pending.values()]) {
      this.fail(p, new ChatterError("DISCONNECTED", `call to "${p.name}" failed: the cluster is closed`));
      cancels.push(this.cancel(p));
    }
    this.deadlines.clear();
    for (const controller of this.running.values()) controller.abort();
    this.running.clear();
    return Promise.all(cancels);
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
