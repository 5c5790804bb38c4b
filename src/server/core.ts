/**
 * The runtime-neutral server: handlers, sessions, the handshake and resume,
 * and shutdown. Runtime adapters (Bun, Node) feed it sockets and frames;
 * topics and fan-out live in topics.ts.
 */
import type { HandlerEntry, PeerOptions } from "../engine/peer.ts";
import { SharedReplyBudget } from "../engine/replies.ts";
import { ChatterError, describeThrown } from "../errors.ts";
import { addHandler, type Proc } from "../proc.ts";
import {
  CloseCode,
  decodeFrames,
  encodeFrame,
  type Frame,
  FrameType,
  type HelloFrame,
  PROTOCOL_VERSION,
  type WelcomeFrame,
} from "../wire/frames.ts";
import type { ClusterBroadcast } from "./cluster.ts";
import { ServerConnection } from "./connection.ts";
import { ClientIdentity, randomSecret, sameSecret } from "./identity.ts";
import { Occupancy, RunningCalls } from "./limits.ts";
import { limitsOf, type ServerHandler, type ServerOptions, withSeedSpellings } from "./options.ts";
import { RateLimiter } from "./rate-limit.ts";
import { closeCodeOf, MAX_REFUSING, refusalOf, refusalResponse } from "./refusal.ts";
import { type ServerSocket, SocketLink } from "./socket.ts";
import { Topics } from "./topics.ts";
import { admit } from "./upgrade.ts";

export type { ServerHandler, ServerOptions };

/** Room for the first message of a socket (its HELLO, maybe with a few calls batched after it), whatever `maxMessageBytes` is. */
const HELLO_BYTES = 4096;

export class ServerCore<TData> {
  readonly handlers = new Map<string, HandlerEntry>();
  /** Live sessions, connected or waiting for a resume. */
  readonly connections = new Set<ServerConnection<TData>>();
  readonly sessions = new Map<string, ServerConnection<TData>>();
  readonly topics: Topics<ServerConnection<TData>>;
  readonly log: ((msg: string) => void) | undefined;
  /** Every limit, with its default filled in. */
  readonly limits: ReturnType<typeof limitsOf>;
  readonly maxMessageBytes: number;
  /** What the runtime must let through: `maxMessageBytes`, but never less than a HELLO may need. */
  readonly maxRuntimeMessageBytes: number;
  readonly maxBufferedBytes: number;
  readonly limiter: RateLimiter | null;
  /** Sockets and parked sessions, in all and per address. */
  private readonly occupancy: Occupancy;
  /** Seconds since the server started, counted by one coarse timer: frame rates and idle sockets are judged on it. */
  private tick = 0;
  /** Refused sockets still open (see MAX_REFUSING). */
  private refusing = 0;
  private readonly clock: ReturnType<typeof setInterval>;
  closing = false;
  /** This instance's id in a cluster. */
  readonly instanceId = crypto.randomUUID();
  /** Open sockets that have not finished the handshake (the others are reached through their sessions). */
  private readonly handshaking = new Set<SocketLink>();
  readonly options: ServerOptions<TData>;
  /** One engine configuration for every session. */
  readonly peerOptions: PeerOptions;
  /** Signs and checks client ids. */
  readonly identity: ClientIdentity;

  constructor(options: ServerOptions<TData>) {
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
    this.maxRuntimeMessageBytes = Math.max(limits.maxMessageBytes, HELLO_BYTES);
    this.maxBufferedBytes = limits.maxBufferedBytes;
    this.limiter = limits.rateLimit && new RateLimiter(limits.rateLimit);
    this.occupancy = new Occupancy(limits.maxConnections, limits.maxConnectionsPerAddress);
    this.topics = new Topics(limits.replay, limits);
    this.topics.onDropped = (topic) => {
      for (const c of this.topics.index.get(topic) ?? [])
        if ((c.socket?.getBufferedAmount() ?? 0) > this.maxBufferedBytes) this.slowConsumer(c);
    };
    this.peerOptions = {
      handlers: this.handlers,
      side: "server",
      log: this.log,
      exposeStack: options.exposeStack ?? false,
      maxConcurrent: limits.maxConcurrentCalls,
      replies: { shared: new SharedReplyBudget(limits.maxKeptBytes) },
      budget: runningBudget(new RunningCalls(limits)),
      formatError: options.formatError,
      onError: (err, conn) => this.report(err, conn as ServerConnection<TData>),
      onControl: (frame, conn: ServerConnection<TData>) =>
        this.protocolError(conn.link, `unexpected frame type ${frame[0]} after the handshake`),
    };
    this.clock = setInterval(() => this.onTick(), 1000);
    (this.clock as { unref?: () => void }).unref?.();
  }

  /** Once a second: advance the clock, and now and then close sockets that have gone silent. */
  private onTick(): void {
    this.tick++;
    const idle = this.limits.idleTimeout;
    if (idle <= 0 || this.tick % Math.max(1, Math.floor(idle / 4)) !== 0) return;
    for (const conn of this.connections) {
      const link = conn.link;
      if (link && this.tick - link.window > idle) {
        this.log?.(`client ${conn.clientId} sent nothing for ${idle} s; closing its socket`);
        this.closeLink(link, CloseCode.PingTimeout, `nothing received for ${idle} s (idleTimeout)`);
      }
    }
  }

  /**
   * Decides, during the upgrade, whether a client may connect. A refusal is a link too: the socket is
   * accepted only to tell the client why (see `open`), since a browser cannot read an upgrade's HTTP status.
   */
  admit(request: Request, ip: string | null): SocketLink | Response | Promise<SocketLink | Response> {
    if (this.closing) return this.refused(new Response("the server is shutting down", { status: 503, headers: { "Retry-After": "5" } }));
    const out = admit(request, ip, { ...this.options, limiter: this.limiter, capacity: (address) => this.occupancy.refusal(address) });
    if (out instanceof Promise) return out.then((link) => (link instanceof SocketLink ? link : this.refused(link)));
    return out instanceof SocketLink ? out : this.refused(out);
  }

  /** A link that only carries a refusal to the client; a plain HTTP refusal when too many are open already. */
  private async refused(reason: unknown): Promise<SocketLink | Response> {
    const refusal = await refusalOf(reason);
    if (this.refusing >= MAX_REFUSING) return refusalResponse(refusal);
    const link = new SocketLink("refused", undefined);
    link.refusal = refusal;
    return link;
  }

  /** An admitted socket opened; it must send HELLO in time. */
  open(link: SocketLink, socket: ServerSocket): void {
    link.socket = socket;
    link.window = this.tick;
    if (link.refusal) {
      this.refusing++;
      this.log?.(`refused a connection: ${link.refusal.code} ${link.refusal.message}`);
      socket.send(encodeFrame([FrameType.Refused, link.refusal]));
      return this.closeLink(link, closeCodeOf(link.refusal), link.refusal.code);
    }
    // Admission checked for room; several upgrades admitted at once may still overfill it.
    if (!this.occupancy.add(link.address)) {
      link.closing = true;
      return socket.close(CloseCode.TryAgainLater, "server is full (maxConnections); try again later");
    }
    link.counted = true;
    this.handshaking.add(link);
    link.helloTimer = setTimeout(() => {
      this.log?.(`client ${link.clientId} sent no HELLO in time; closing`);
      this.closeLink(link, CloseCode.HandshakeTimeout, "no HELLO received in time");
    }, this.options.handshakeTimeout ?? 10_000);
  }

  message(link: SocketLink, message: string | Uint8Array): void {
    if (link.closing) return; // Closed by us (a refusal, a limit): what it still sends is not looked at.
    if (typeof message === "string") return this.protocolError(link, "text frames are not part of the protocol");
    // A HELLO (with its resume token and client key) must always fit, however small the limit for calls is.
    if (message.byteLength > (link.conn ? this.maxMessageBytes : this.maxRuntimeMessageBytes)) {
      return this.refuse(
        link,
        CloseCode.TooBig,
        `message of ${message.byteLength} bytes exceeds maxMessageBytes (${this.maxMessageBytes})`,
      );
    }
    let frames: Frame[];
    try {
      frames = decodeFrames(message, this.limits.maxFramesPerMessage);
    } catch (err) {
      const limit = err instanceof ChatterError && err.code === "LIMIT";
      return this.refuse(link, limit ? CloseCode.TooBig : CloseCode.ProtocolError, describeThrown(err));
    }
    if (this.overRate(link, frames.length)) {
      // Only this socket goes: the session parks and may resume, its calls in flight intact.
      this.log?.(`client ${link.clientId} sent more than ${this.limits.maxFramesPerSecond} frames in a second; closing its socket`);
      return this.closeLink(
        link,
        CloseCode.TooManyFrames,
        `more than ${this.limits.maxFramesPerSecond} frames per second (maxFramesPerSecond)`,
      );
    }
    try {
      this.handle(link, frames);
    } catch (err) {
      // A bug of ours or of a hook, not the client's: report it once and drop the socket, rather than once per message.
      this.report(err, (link.conn as ServerConnection<TData> | null) ?? undefined);
      this.closeLink(link, CloseCode.InternalError, "internal error");
    }
  }

  private handle(link: SocketLink, frames: Frame[]): void {
    for (const frame of frames) {
      // Looked up per frame: a HELLO at the head of a batch binds the session for the frames after it.
      const conn = link.conn as ServerConnection<TData> | null;
      if (conn) conn.peer.receive(frame);
      else if (frame[0] === FrameType.Hello && link.helloTimer !== undefined) this.handshake(link, frame);
      else return this.protocolError(link, "the first frame must be HELLO");
      if (link.closing) return; // That frame got the socket closed: ignore the rest of the batch.
    }
    // Answers made while handling this message go out now, inside the runtime's corked handler: one write,
    // and no wait for the end of the tick.
    (link.conn as ServerConnection<TData> | null)?.flush();
  }

  /** Counts a message's frames (at least one) against the socket's budget for this second. */
  private overRate(link: SocketLink, frames: number): boolean {
    if (link.window !== this.tick) {
      link.window = this.tick;
      link.frames = 0;
    }
    link.frames += frames || 1;
    return link.frames > this.limits.maxFramesPerSecond;
  }

  /** Closes a socket that broke the protocol, with a reason naming what; its session ends. */
  protocolError(link: SocketLink | null, why: string): void {
    if (link) this.refuse(link, CloseCode.ProtocolError, why);
  }

  private refuse(link: SocketLink, code: number, reason: string): void {
    this.log?.(`closing client ${link.clientId} with ${code}: ${reason}`);
    const conn = link.conn as ServerConnection<TData> | null;
    if (conn) this.endSession(conn, code, reason);
    else this.closeLink(link, code, reason);
  }

  /** Closes a socket and marks it, so frames still queued in a batch are not handled. */
  private closeLink(link: SocketLink, code: number, reason: string): void {
    link.closing = true;
    // Close reasons are limited to 123 bytes by RFC 6455.
    link.socket.close(code, reason.slice(0, 120));
  }

  /** A socket that cannot keep up: close it; its session may resume and catch up. */
  slowConsumer(conn: ServerConnection<TData>): void {
    const link = conn.link;
    if (!link) return;
    this.log?.(`client ${conn.clientId} is not reading fast enough; closing its socket`);
    this.closeLink(link, CloseCode.SlowConsumer, `slow consumer: more than ${this.maxBufferedBytes} bytes waiting`);
  }

  private handshake(link: SocketLink, hello: HelloFrame): void {
    const [, version, claimedId, sessionId, token, lastEvent, settledBelow] = hello;
    clearTimeout(link.helloTimer);
    link.helloTimer = undefined; // Do not keep the spent timer alive with the socket.
    this.handshaking.delete(link);
    if (version !== PROTOCOL_VERSION) {
      return this.closeLink(link, CloseCode.VersionMismatch, `protocol version ${version} unsupported; server speaks ${PROTOCOL_VERSION}`);
    }
    const old = token === null ? undefined : this.sessions.get(sessionId);
    if (old && sameSecret(old.token, token as string)) {
      if (this.topics.log.covers(old, lastEvent)) return this.resume(old, link, lastEvent, settledBelow);
      this.endSession(old, CloseCode.Unresumable, "broadcasts it missed are no longer kept");
    }
    // A new session, always with an id this server made: ids cross instances (cluster exclusions), so a
    // client must not be able to pick one that names somebody else's session.
    const id = crypto.randomUUID();
    // The client id is kept only when the client proves it with the key this server signed it with.
    const proven = this.identity.verify(claimedId, hello[7]);
    const clientId = proven ? claimedId : crypto.randomUUID();
    const conn = new ServerConnection<TData>(this, clientId, id, randomSecret(), link.data as TData, link.address);
    this.sessions.set(id, conn);
    this.connections.add(conn);
    this.bind(conn, link);
    link.clientId = clientId;
    const key = proven ? (hello[7] as string) : this.identity.sign(clientId);
    link.socket.send(encodeFrame([FrameType.Welcome, id, conn.token, false, conn.peer.settledBelow, this.maxMessageBytes, clientId, key]));
    conn.peer.attach(conn, false);
    this.log?.(`client ${conn.clientId} connected (session ${id})`);
    this.hook(() => this.options.onOpen?.(conn), conn);
  }

  /** Moves a session to a new socket: catch it up on broadcasts, rejoin its topics, resend unanswered calls. */
  private resume(conn: ServerConnection<TData>, link: SocketLink, lastEvent: number, settledBelow: number): void {
    clearTimeout(conn.expiry);
    this.unpark(conn);
    const stale = conn.link;
    this.bind(conn, link);
    if (stale) this.closeLink(stale, CloseCode.Replaced, "session resumed on a newer socket");
    const welcome: WelcomeFrame = [FrameType.Welcome, conn.sessionId, conn.token, true, conn.peer.settledBelow, this.maxMessageBytes];
    welcome.push(conn.clientId, this.identity.sign(conn.clientId));
    link.socket.send(encodeFrame(welcome));
    const missed = this.topics.log.missed(conn, lastEvent);
    for (const frame of missed) conn.send(frame);
    // Out before the socket rejoins its topics, so no newer broadcast can overtake them.
    conn.flush();
    this.topics.rejoin(conn);
    conn.peer.attach(conn, true, settledBelow);
    this.log?.(`client ${conn.clientId} resumed session ${conn.sessionId} (${missed.length} broadcast(s) caught up)`);
    if (stale === null) this.hook(() => this.options.onResume?.(conn), conn);
  }

  private bind(conn: ServerConnection<TData>, link: SocketLink): void {
    if (conn.link) conn.link.conn = null;
    conn.link = link;
    link.conn = conn;
  }

  /** The runtime wrote out what it had queued for this socket. */
  drained(link: SocketLink): void {
    const conn = link.conn as ServerConnection<TData> | null;
    if (conn && conn.link === link) conn.peer.release();
  }

  closed(link: SocketLink, code: number, reason: string): void {
    clearTimeout(link.helloTimer);
    this.handshaking.delete(link);
    if (link.refusal) this.refusing--;
    if (link.counted) {
      link.counted = false;
      this.occupancy.remove(link.address);
    }
    const conn = link.conn as ServerConnection<TData> | null;
    if (!conn || conn.link !== link) return; // No handshake, or a stale socket of a resumed session.
    conn.link = null;
    conn.peer.detach();
    const window = this.options.resumeWindow ?? 30_000;
    // 4004 is client.close(); 1001 from a client is a browser leaving the page: neither comes back. 1009 is
    // the runtime refusing an oversized frame: resuming would only send it again.
    const gone = code === CloseCode.ClientClosed || code === CloseCode.GoingAway || code === CloseCode.TooBig;
    if (this.closing || window <= 0 || gone) return this.endSession(conn, code, reason);
    // A parked session holds memory as a socket does: it counts against the same limits.
    if (!this.occupancy.add(link.address)) return this.endSession(conn, code, `${reason}; no room to keep the session (maxConnections)`);
    conn.parkedAt = { address: link.address };
    this.log?.(`client ${conn.clientId} dropped (${code} ${reason}); keeping session ${conn.sessionId} for ${window} ms`);
    conn.expiry = setTimeout(() => this.endSession(conn, code, `${reason || "dropped"}; not resumed within ${window} ms`), window);
    this.hook(() => this.options.onDisconnect?.(conn, code, reason), conn);
  }

  /** Ends a session for good: calls to it fail, it leaves its topics, and `onClose` runs. */
  endSession(conn: ServerConnection<TData>, code: number, reason: string): void {
    if (conn.ended) return;
    conn.ended = true;
    clearTimeout(conn.expiry);
    this.unpark(conn);
    this.sessions.delete(conn.sessionId);
    this.connections.delete(conn);
    this.topics.remove(conn);
    conn.peer.close(`session ended (${code}${reason ? ` ${reason}` : ""})`);
    const link = conn.link;
    conn.link = null;
    if (link) {
      link.conn = null;
      this.closeLink(link, code, reason);
    }
    this.log?.(`session ${conn.sessionId} of client ${conn.clientId} ended: ${code} ${reason}`);
    this.hook(() => this.options.onClose?.(conn, code, reason), conn);
  }

  /** A parked session is back on a socket, or ended: it no longer counts apart. */
  private unpark(conn: ServerConnection<TData>): void {
    if (!conn.parkedAt) return;
    this.occupancy.remove(conn.parkedAt.address);
    conn.parkedAt = null;
  }

  /** Refuses new clients, waits for running handlers (up to `timeout` ms), then closes every socket with 1001. */
  async shutdown(timeout: number): Promise<void> {
    this.closing = true;
    clearInterval(this.clock);
    const deadline = Date.now() + timeout;
    const busy = () => [...this.connections].some((c) => c.peer.runningCount > 0);
    while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (busy()) this.log?.("shutdown deadline passed with handlers still running");
    for (const conn of [...this.connections]) this.endSession(conn, CloseCode.GoingAway, "server is shutting down");
    for (const link of this.handshaking) this.closeLink(link, CloseCode.GoingAway, "server is shutting down");
  }

  private hook(run: () => unknown, conn: ServerConnection<TData>): void {
    try {
      const out = run();
      if (out instanceof Promise) out.catch((err) => this.report(err, conn));
    } catch (err) {
      this.report(err, conn);
    }
  }

  report(err: unknown, conn?: ServerConnection<TData>): void {
    if (this.options.onError) this.options.onError(err, conn);
    else console.error("[chatter] server:", err);
  }

  on(proc: Proc, handler: unknown): () => void {
    return addHandler(this.handlers, { proc, handler } as HandlerEntry, "server");
  }

  /** Fans out a broadcast whose input was checked already (connection.ts `broadcastFrom`), here and to the cluster. */
  broadcast(
    topics: string | Iterable<string>,
    proc: Proc,
    input: unknown,
    exclude: ReadonlySet<ServerConnection<TData>>,
    volatile = false,
  ): void {
    const list = typeof topics === "string" ? [topics] : [...new Set(topics)];
    const value = proc.takes === null ? null : input;
    this.topics.broadcast(list, (seq) => encodeFrame([FrameType.Event, seq, proc.name, value]), exclude, volatile);
    const cluster = this.options.cluster;
    if (cluster) {
      const excludeSessions = [...exclude].map((c) => c.sessionId);
      cluster.publish({ origin: this.instanceId, topics: list, name: proc.name, input: value, excludeSessions, volatile });
    }
  }

  /** Delivers a broadcast another instance sent (already checked there) to the local subscribers. */
  deliver(b: ClusterBroadcast): void {
    const exclude = new Set<ServerConnection<TData>>();
    for (const id of b.excludeSessions) {
      const c = this.sessions.get(id);
      if (c) exclude.add(c);
    }
    this.topics.broadcast(b.topics, (seq) => encodeFrame([FrameType.Event, seq, b.name, b.input]), exclude, b.volatile === true);
  }
}

/** The server's shared handler limits, as the engine asks for them (the owner is a session). */
function runningBudget(running: RunningCalls): PeerOptions["budget"] {
  return {
    refuse: (owner, proc) => running.refuse(owner as ServerConnection, proc),
    started: (owner) => running.started(owner as ServerConnection),
    done: (owner) => running.done(owner as ServerConnection),
  };
}
