import { type CallOptions, Peer } from "../engine/peer.ts";
import { check, type InputArgs, type Proc, type ResultOf } from "../proc.ts";
import { joinFrames } from "../wire/frames.ts";
import type { SubscriptionChange } from "./broadcast-log.ts";
import type { ServerCore } from "./core.ts";
import type { ServerSocket, SocketLink } from "./socket.ts";
import type { TopicList } from "./topics.ts";

/** A batch stops growing here: big enough to carry bursts, small enough to keep other work flowing. */
const BATCH_BYTES = 64 * 1024;

/** Options of `connection.broadcast`. */
export interface ConnectionBroadcastOptions<TData> {
  /** Deliver to this connection too, if it is subscribed. Defaults to `false`. */
  includeSelf?: boolean;
  /** Further connections to leave out. */
  exclude?: Iterable<ServerConnection<TData>>;
  /**
   * For what is stale a moment later (typing indicators): not kept for replay after a drop, and skipped for
   * sockets that are behind (anything waiting in their send buffer) or away. Defaults to `false`.
   */
  volatile?: boolean;
}

/**
 * One client session, as the server sees it. It outlives a dropped socket:
 * when the client resumes within the resume window, the same object carries
 * on with its `data`, subscriptions and calls in flight. It is the second
 * argument of every server handler.
 */
export class ServerConnection<TData = unknown> {
  /** What `getConnectionData` returned when this session began. */
  readonly data: TData;
  /** The client's persistent id. */
  readonly clientId: string;
  /** The session's id. */
  readonly sessionId: string;
  /** @internal the secret a client must show to resume this session. */
  readonly token: string;
  /** @internal the topics this session is subscribed to; null until the first. */
  topics: TopicList | null = null;
  /** @internal the newest broadcast when the session began: it needs none older on resume. */
  readonly since: number;
  /** @internal subscription changes, to judge which logged broadcasts it missed; null when none matter. */
  changes: SubscriptionChange[] | null = null;
  /** @internal */
  changesFrom = 0;
  /** @internal */
  readonly peer: Peer;
  /** @internal the socket serving this session now, if any. */
  link: SocketLink | null = null;
  /** @internal ends the session when the resume window passes. */
  expiry: ReturnType<typeof setTimeout> | undefined;
  /** @internal */
  ended = false;
  /** @internal the client's address when the session began (per /64 for IPv6), for the per-address limits. */
  readonly address: string | null;
  /** @internal set while the session waits for a resume and counts against the connection limits. */
  parkedAt: { address: string | null } | null = null;
  private readonly core: ServerCore<TData>;

  /** @internal made by the server core when a HELLO starts a new session. */
  constructor(core: ServerCore<TData>, clientId: string, sessionId: string, token: string, data: TData, address: string | null) {
    this.core = core;
    this.address = address;
    this.clientId = clientId;
    this.sessionId = sessionId;
    this.token = token;
    this.data = data;
    this.since = core.topics.log.seq;
    this.peer = new Peer(core.peerOptions, this);
  }

  /** Whether a socket serves this session now (false while it waits for the client to resume). */
  get isConnected(): boolean {
    return this.link !== null;
  }

  /** @internal the live socket, or null */
  get socket(): ServerSocket | null {
    return this.link?.socket ?? null;
  }

  /** Frames made in this tick, sent together as one message at its end (see flush); null when none. */
  private outbox: Uint8Array[] | null = null;
  private outboxBytes = 0;

  /**
   * @internal queues a frame for the live socket; the frames of one tick go
   * out as one message (PROTOCOL.md, "Framing").
   */
  send(frame: Uint8Array): void {
    if (!this.link) return;
    if (this.outboxBytes + frame.byteLength > BATCH_BYTES) this.flush();
    if (this.outbox) this.outbox.push(frame);
    else {
      this.outbox = [frame];
      queueMicrotask(() => this.flush());
    }
    this.outboxBytes += frame.byteLength;
  }

  /**
   * @internal sends what is queued. Backpressure (-1: queued by the runtime)
   * holds new outgoing calls until the socket drains; a dropped message (0)
   * means a slow consumer.
   */
  flush(): void {
    const frames = this.outbox;
    if (!frames) return;
    this.outbox = null;
    const size = this.outboxBytes;
    this.outboxBytes = 0;
    const link = this.link;
    if (!link) return; // Gone meanwhile: the engine resends what matters after a resume.
    const status = link.socket.send(joinFrames(frames, size));
    if (status === -1) this.peer.hold();
    else if (status === 0) this.core.slowConsumer(this);
  }

  /**
   * Calls a procedure on this client. While the client is away (and may
   * resume) the call waits, and goes out when it is back.
   * @param proc - the procedure, made with `createProc`
   * @param args - its input, checked against `takes` before it is sent, then `{ timeout, signal }`
   * @returns the client handler's result, checked against `returns`
   */
  call<P extends Proc>(proc: P, ...args: [...InputArgs<P>, options?: CallOptions]): Promise<ResultOf<P>> {
    return this.peer.call(proc, args[0], args[1] as CallOptions | undefined) as Promise<ResultOf<P>>;
  }

  /**
   * Calls a procedure on every connection subscribed to the topics, except
   * this one unless `includeSelf` is set. Each subscriber gets it once.
   * @param topics - a topic or an iterable of topics
   * @param proc - the procedure to call
   * @param args - its input (checked against `takes` first), then `{ includeSelf, exclude }`
   * @returns a promise that resolves once the broadcast is handed to the subscribers, or rejects with
   *   `VALIDATION` (then nothing is sent); a rejection nobody takes at once goes to `onError`
   */
  broadcast<P extends Proc>(
    topics: string | Iterable<string>,
    proc: P,
    ...args: [...InputArgs<P>, options?: ConnectionBroadcastOptions<TData>]
  ): Promise<void> {
    const options = args[1] as ConnectionBroadcastOptions<TData> | undefined;
    const exclude = new Set(options?.exclude ?? []);
    if (!options?.includeSelf) exclude.add(this);
    return broadcastFrom(this.core, topics, proc, args[0], exclude, options?.volatile === true);
  }

  /** Subscribes this connection to a topic, so it gets the topic's broadcasts. */
  subscribe(topic: string): void {
    this.core.topics.subscribe(this, topic);
  }

  /** Unsubscribes this connection from a topic. */
  unsubscribe(topic: string): void {
    this.core.topics.unsubscribe(this, topic);
  }

  /** @returns whether this connection is subscribed to the topic */
  isSubscribed(topic: string): boolean {
    return this.core.topics.has(this, topic);
  }

  /** Ends the session and closes its socket. The client reconnects with a fresh session. */
  close(code = 1000, reason = "closed by the server"): void {
    this.core.endSession(this, code, reason);
  }
}

/**
 * A broadcast's promise. It notes whether the caller took the outcome (`then`, `catch`, `await`), so that a
 * failure nobody takes goes to `onError` rather than becoming an unhandled rejection that ends the process.
 */
class Broadcast extends Promise<void> {
  /** Promises made from this one (by then, catch, finally) are plain promises. */
  static override get [Symbol.species]() {
    return Promise;
  }
  #taken = false;

  /** @returns a broadcast's promise that settles as `work` does; its failure goes to `report` unless taken */
  static of(work: Promise<unknown>, report: (err: unknown) => void): Promise<void> {
    const out = new Broadcast((resolve, reject) => work.then(() => resolve(), reject));
    // Handled as far as the runtime knows; whether the caller took it is judged once the caller's tick is over.
    Promise.prototype.then.call(out, undefined, (err: unknown) => setImmediate(() => out.#taken || report(err)));
    return out;
  }

  // biome-ignore lint/suspicious/noThenProperty: a promise's own then, overridden only to note that it was called
  override then<A = void, B = never>(...args: Parameters<Promise<void>["then"]>): Promise<A | B> {
    this.#taken = true;
    return super.then(...args) as Promise<A | B>;
  }
}

/**
 * @internal one broadcast for `server.broadcast`, `server.in(topics).broadcast` and `connection.broadcast`:
 * checks the input (sync where the schema allows, keeping broadcasts in order), then fans it out.
 * @returns a promise that resolves once the broadcast is handed to the subscribers, or rejects with the
 *   `VALIDATION` error; never throws
 */
export function broadcastFrom<TData>(
  core: ServerCore<TData>,
  topics: string | Iterable<string>,
  proc: Proc,
  input: unknown,
  exclude: ReadonlySet<ServerConnection<TData>>,
  volatile = false,
): Promise<void> {
  const report = (err: unknown) => core.report(err);
  try {
    const checked = check(proc.takes, input, proc.name, "input");
    if (!(checked instanceof Promise)) {
      core.broadcast(topics, proc, input, exclude, volatile);
      return Promise.resolve();
    }
    const list = typeof topics === "string" ? topics : [...topics]; // Read now: the caller may change its set meanwhile.
    return Broadcast.of(
      checked.then(() => core.broadcast(list, proc, input, exclude, volatile)),
      report,
    );
  } catch (err) {
    return Broadcast.of(Promise.reject(err), report);
  }
}
