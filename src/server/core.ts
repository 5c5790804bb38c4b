/**
 * The runtime-neutral server: sessions, the socket events every adapter
 * reports (adapter.ts is the contract), limits judged per socket, shutdown,
 * and broadcasts. The handshake is in handshake.ts, topics and fan-out in
 * topics.ts, admission in upgrade.ts.
 */

import { SharedReplyBudget } from "../engine/replies.ts";
import type { HandlerEntry, PeerOptions } from "../engine/types.ts";
import { addHandler, type Proc } from "../proc.ts";
import { CloseCode, encodeFrame, FrameType } from "../wire/frames.ts";
import type { AdapterHost, SendResult, SocketDriver } from "./adapter.ts";
import type { ClusterBroadcast } from "./cluster.ts";
import type { ClusterPort } from "./cluster-port.ts";
import { type ServerConnection, sessionOf } from "./connection.ts";
import { ConnectionSet } from "./connection-set.ts";
import { ClientIdentity } from "./identity.ts";
import { Occupancy, RunningCalls } from "./limits.ts";
import { limitsOf, type ServerOptions, withSeedSpellings } from "./options.ts";
import { RateLimiter } from "./rate-limit.ts";
import type { Session, SessionHost } from "./session.ts";
import { SessionTable } from "./session-table.ts";
import type { SocketState } from "./socket-state.ts";
import { type TopicSockets, Topics } from "./topics.ts";

// biome-ignore lint/suspicious/noExplicitAny: the core serves any connection data type
type AnyOptions = ServerOptions<any>;

export class ServerCore implements SessionHost {
  readonly handlers = new Map<string, HandlerEntry>();
  /** Live sessions, connected or waiting for a resume, by id (an array by slot, not a Map: see session-table.ts). */
  readonly sessions = new SessionTable();
  /** Their public faces, for `server.connections`, `find` and `filter`: a view of `sessions`. */
  readonly connections = new ConnectionSet(this.sessions);
  readonly topics: Topics<Session>;
  readonly log: ((msg: string) => void) | undefined;
  /** Every limit, with its default filled in. */
  readonly limits: ReturnType<typeof limitsOf>;
  readonly maxMessageBytes: number;
  readonly limiter: RateLimiter | null;
  /** Sockets and parked sessions, in all and per address. */
  readonly occupancy: Occupancy;
  /** Seconds since the server started, counted by one coarse timer: frame rates and idle sockets are judged on it. */
  tick = 0;
  /** Refused sockets still open (see MAX_REFUSING). */
  refusing = 0;
  private readonly clock: ReturnType<typeof setInterval>;
  closing = false;
  /** This instance's id in a cluster. */
  readonly instanceId = crypto.randomUUID();
  /** This instance's membership of a cluster, when `options.cluster` names a backend. */
  cluster: ClusterPort | undefined = undefined;
  /** Open sockets that have not finished the handshake (the others are reached through their sessions). */
  readonly handshaking = new Set<SocketState>();
  readonly options: AnyOptions;
  /** One engine configuration for every session. */
  readonly peerOptions: PeerOptions;
  /** Signs and checks client ids. */
  readonly identity: ClientIdentity;
  /** How this server's sockets are worked, set by the one adapter that serves it (host.ts). */
  driver: SocketDriver<unknown> | null = null;
  /** What the adapter reports to; made on `serve`. */
  adapterHost: AdapterHost<unknown> | null = null;

  constructor(options: AnyOptions) {
    options = withSeedSpellings(options);
    this.options = options;
    this.log = options.verbose ? (msg) => console.log(`[chatter] server: ${msg}`) : undefined;
    this.identity = new ClientIdentity(options.secret);
    if (options.cluster && !options.secret) {
      console.warn("[chatter] server: give every instance of a cluster the same `secret`, or client ids will not carry across instances");
    }
    const limits = limitsOf(options);
    this.limits = limits;
    this.maxMessageBytes = limits.maxMessageBytes;
    this.limiter = limits.rateLimit && new RateLimiter(limits.rateLimit);
    this.occupancy = new Occupancy(limits.maxConnections, limits.maxConnectionsPerAddress);
    this.topics = new Topics(limits.replay, limits, this.topicSockets(), this.sessions);
    this.topics.onChange = (session) => this.cluster?.records.changed(session);
    this.topics.onDropped = (topic) => {
      for (const s of this.topics.index.get(topic) ?? [])
        if (s.state && this.buffered(s.state) > limits.maxBufferedBytes) this.slowConsumer(s);
    };
    this.peerOptions = {
      handlers: this.handlers,
      side: "server",
      log: this.log,
      exposeStack: options.exposeStack ?? false,
      maxConcurrent: limits.maxConcurrentCalls,
      replies: { shared: new SharedReplyBudget(limits.maxKeptBytes) },
      streamBudget: { used: 0, max: limits.maxStreamBytes },
      budget: runningBudget(new RunningCalls(limits)),
      formatError: options.formatError,
      onError: (err, conn) => this.report(err, conn as ServerConnection),
      onControl: (frame, conn: ServerConnection) => {
        const state = sessionOf(conn).state;
        if (state) this.refuse(state, CloseCode.ProtocolError, `unexpected frame type ${frame[0]} after the handshake`);
      },
    };
    this.clock = setInterval(() => this.onTick(), 1000);
    (this.clock as { unref?: () => void }).unref?.();
  }

  /** What topics use of the driver; `native` is read when a broadcast goes out, so an adapter may come later. */
  private topicSockets(): TopicSockets {
    const core = this;
    let wrapped: TopicSockets["native"] = null;
    return {
      isBehind: (state) => this.buffered(state) > 0,
      // Made once, on the first read after an adapter with native pub/sub connects (a server has one driver),
      // not on every broadcast and subscribe.
      get native() {
        const native = core.driver?.native;
        if (wrapped || !native) return wrapped;
        wrapped = {
          subscribe: (state: SocketState, topic: string) => native.subscribe(state.socket, topic),
          unsubscribe: (state: SocketState, topic: string) => native.unsubscribe(state.socket, topic),
          publish: (topic: string, frame: Uint8Array) => native.publish(topic, frame),
        };
        return wrapped;
      },
    };
  }

  /** Sends one message to a socket through the driver, or through the cluster when the socket is on another instance. */
  write(state: SocketState, message: Uint8Array): SendResult {
    if (state.remote) {
      this.cluster?.relays.write(state.socket, message);
      return "sent";
    }
    return (this.driver as SocketDriver<unknown>).send(state.socket, message);
  }

  buffered(state: SocketState): number {
    return state.remote ? 0 : (this.driver as SocketDriver<unknown>).bufferedAmount(state.socket);
  }

  /** Once a second: advance the clock, and now and then close sockets that have gone silent. */
  private onTick(): void {
    this.tick++;
    const idle = this.limits.idleTimeout;
    if (idle <= 0 || this.tick % Math.max(1, Math.floor(idle / 4)) !== 0) return;
    for (const session of this.sessions.values()) {
      const state = session.state;
      if (state && this.tick - state.window > idle) {
        this.log?.(`client ${session.clientId} sent nothing for ${idle} s; closing its socket`);
        this.closeSocket(state, CloseCode.PingTimeout, `nothing received for ${idle} s (idleTimeout)`);
      }
    }
  }

  /** Closes a socket that broke the protocol or a limit, with a reason naming what; its session ends. */
  refuse(state: SocketState, code: number, reason: string): void {
    this.log?.(`closing client ${state.clientId} with ${code}: ${reason}`);
    const session = state.session as Session | null;
    if (session) this.endSession(session, code, reason);
    else this.closeSocket(state, code, reason);
  }

  /** Closes a socket and marks it, so frames still queued in a batch are not handled. */
  closeSocket(state: SocketState, code: number, reason: string): void {
    state.closing = true;
    // Close reasons are limited to 123 bytes by RFC 6455.
    if (state.remote) this.cluster?.relays.close(state.socket, code, reason.slice(0, 120));
    else (this.driver as SocketDriver<unknown>).close(state.socket, code, reason.slice(0, 120));
  }

  /** A socket that cannot keep up: close it; its session may resume and catch up. */
  slowConsumer(session: Session): void {
    if (!session.state) return;
    this.log?.(`client ${session.clientId} is not reading fast enough; closing its socket`);
    const why = `slow consumer: more than ${this.limits.maxBufferedBytes} bytes waiting`;
    this.closeSocket(session.state, CloseCode.SlowConsumer, why);
  }

  /** The runtime wrote out what it had queued for this socket. */
  drained(state: SocketState): void {
    const session = state.session as Session | null;
    if (session && session.state === state) session.madePeer?.release();
  }

  closed(state: SocketState, code: number, reason: string): void {
    // Gone, whoever closed it: work that was waiting on it (a cluster routing its HELLO) must not use it.
    state.closing = true;
    clearTimeout(state.helloTimer);
    this.handshaking.delete(state);
    if (state.refusal) this.refusing--;
    if (state.counted) {
      state.counted = false;
      this.occupancy.remove(state.address);
    }
    if (state.relay) return this.cluster?.relays.socketClosed(state, code, reason);
    const session = state.session as Session | null;
    if (!session || session.state !== state) return; // No handshake, or a stale socket of a resumed session.
    session.state = null;
    this.topics.relayed.delete(session);
    session.madePeer?.detach();
    // 4004 is client.close(); 1001 from a client is a browser leaving the page: neither comes back. 1009 is
    // the runtime refusing an oversized frame: resuming would only send it again.
    const gone = code === CloseCode.ClientClosed || code === CloseCode.GoingAway || code === CloseCode.TooBig;
    if (gone) return this.endSession(session, code, reason);
    this.park(session, state.address, code, reason);
  }

  /** Keeps a session without a socket for the resume window, or ends it when it cannot be kept. */
  park(session: Session, address: string | null, code: number, reason: string): void {
    const window = this.options.resumeWindow ?? 30_000;
    if (this.closing || window <= 0) return this.endSession(session, code, reason);
    // A parked session holds memory as a socket does: it counts against the same limits.
    if (!this.occupancy.add(address)) return this.endSession(session, code, `${reason}; no room to keep the session (maxConnections)`);
    session.parkedAt = { address };
    this.log?.(`client ${session.clientId} dropped (${code} ${reason}); keeping session ${session.sessionId} for ${window} ms`);
    session.expiry = setTimeout(() => this.endSession(session, code, `${reason || "dropped"}; not resumed within ${window} ms`), window);
    const conn = session.connection as ServerConnection;
    this.hook(() => this.options.onDisconnect?.(conn, code, reason), session);
  }

  /** Ends a session for good: calls to it fail, it leaves its topics, and `onClose` runs. */
  endSession(session: Session, code: number, reason: string): void {
    if (session.ended) return;
    session.ended = true;
    clearTimeout(session.expiry);
    this.unpark(session);
    this.sessions.delete(session.sessionId);
    this.topics.remove(session);
    this.topics.relayed.delete(session);
    this.cluster?.records.gone(session);
    // Made now if it was not: a closed engine fails the calls an app still makes on the ended connection.
    session.peer.close(`session ended (${code}${reason ? ` ${reason}` : ""})`);
    const state = session.state;
    session.state = null;
    if (state) {
      state.session = null;
      this.closeSocket(state, code, reason);
    }
    this.log?.(`session ${session.sessionId} of client ${session.clientId} ended: ${code} ${reason}`);
    this.hook(() => this.options.onClose?.(session.connection as ServerConnection, code, reason), session);
  }

  /** A parked session is back on a socket, or ended: it no longer counts apart. */
  unpark(session: Session): void {
    if (!session.parkedAt) return;
    this.occupancy.remove(session.parkedAt.address);
    session.parkedAt = null;
  }

  /** Refuses new clients, waits for running handlers (up to `timeout` ms), then closes every socket with 1001. */
  async shutdown(timeout: number): Promise<void> {
    this.closing = true;
    clearInterval(this.clock);
    const deadline = Date.now() + timeout;
    const busy = () => [...this.sessions.values()].some((s) => (s.madePeer?.runningCount ?? 0) > 0);
    while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (busy()) this.log?.("shutdown deadline passed with handlers still running");
    // Another instance takes these sessions over when their clients come back: their records must be current.
    await this.cluster?.records.writeNow();
    for (const session of [...this.sessions.values()]) this.endSession(session, CloseCode.GoingAway, "server is shutting down");
    for (const state of this.handshaking) this.closeSocket(state, CloseCode.GoingAway, "server is shutting down");
    await this.cluster?.close();
  }

  /** Runs an app hook; what it throws or rejects with goes to `onError`. */
  hook(run: () => unknown, session: Session): void {
    try {
      const out = run();
      if (out instanceof Promise) out.catch((err) => this.report(err, session.connection as ServerConnection));
    } catch (err) {
      this.report(err, session.connection as ServerConnection);
    }
  }

  report(err: unknown, conn?: ServerConnection): void {
    if (this.options.onError) this.options.onError(err, conn);
    else console.error("[chatter] server:", err);
  }

  on(proc: Proc, handler: unknown): () => void {
    return addHandler(this.handlers, { proc, handler } as HandlerEntry, "server");
  }

  /**
   * Fans out a broadcast whose input was checked already (broadcast.ts). In a cluster it goes through the
   * cluster's log, and is delivered here too when read back, so every instance delivers in one order; a
   * volatile one is delivered here at once and sent to the others, unordered.
   * @returns in a cluster, a promise that resolves once the log has the broadcast
   */
  broadcast(
    topics: string | Iterable<string>,
    proc: Proc,
    input: unknown,
    exclude: ReadonlySet<Session>,
    volatile = false,
  ): Promise<void> | undefined {
    const list = typeof topics === "string" ? [topics] : [...new Set(topics)];
    const value = proc.takes === null ? null : input;
    const cluster = this.cluster;
    if (!cluster) {
      this.topics.broadcast(list, (seq) => encodeFrame([FrameType.Event, seq, proc.name, value]), exclude, volatile);
      return undefined;
    }
    const excludeSessions = [...exclude].map((s) => s.sessionId);
    const b: ClusterBroadcast = { origin: this.instanceId, topics: list, name: proc.name, input: value, excludeSessions };
    if (!volatile) return cluster.log.append(b);
    this.topics.broadcast(list, (seq) => encodeFrame([FrameType.Event, seq, proc.name, value]), exclude, true);
    b.volatile = true;
    cluster.bus.broadcastVolatile(b);
    return undefined;
  }

  /** Delivers a broadcast from the cluster (checked where it was sent) to the local subscribers; `seq` 0 is a volatile one. */
  deliver(b: ClusterBroadcast, seq: number): void {
    const exclude = new Set<Session>();
    for (const id of b.excludeSessions) {
      const s = this.sessions.get(id);
      if (s) exclude.add(s);
    }
    const build = (n: number) => encodeFrame([FrameType.Event, n, b.name, b.input]);
    this.topics.broadcast(b.topics, build, exclude, seq === 0, seq || undefined);
  }
}

/** The server's shared handler limits, as the engine asks for them (the owner is a connection; its session is counted). */
function runningBudget(running: RunningCalls): PeerOptions["budget"] {
  return {
    refuse: (owner, proc) => running.refuse(sessionOf(owner as ServerConnection), proc),
    started: (owner) => running.started(sessionOf(owner as ServerConnection)),
    done: (owner) => running.done(sessionOf(owner as ServerConnection)),
  };
}
