/**
 * The runtime-neutral server: handlers, connections, topics, broadcast and
 * the handshake. Runtime adapters (Bun, Node) feed it sockets and frames.
 */
import type { CallContext } from "../engine/context.ts";
import type { HandlerEntry } from "../engine/peer.ts";
import { ChatterError } from "../errors.ts";
import { check, type Proc } from "../proc.ts";
import { CloseCode, decodeFrame, encodeFrame, FrameType, type HelloFrame, PROTOCOL_VERSION } from "../wire/frames.ts";
import { ServerConnection } from "./connection.ts";
import type { Admission, Publisher, ServerSocket } from "./socket.ts";
import { admit, type ConnectionInfo } from "./upgrade.ts";

/** Options of `createServer`. */
export interface ServerOptions<TData = unknown> {
  /**
   * Runs during the upgrade, before the socket opens. Its result becomes
   * `connection.data`. Throw to refuse with 401, or return or throw a
   * `Response` to refuse with that response.
   */
  getConnectionData?: (info: ConnectionInfo) => TData | Promise<TData>;
  /** Runs once a client's handshake is done, before its calls are handled. */
  onOpen?: (connection: ServerConnection<NoInfer<TData>>) => unknown;
  /** Runs after a connection has closed. */
  onClose?: (connection: ServerConnection<NoInfer<TData>>, code: number, reason: string) => unknown;
  /** Gets errors nobody awaits: failing hooks and broadcast handlers. Defaults to `console.error`. */
  onError?: (error: unknown, connection?: ServerConnection<NoInfer<TData>>) => void;
  /** Log what happens and why. */
  verbose?: boolean;
  /** Send handler stacks to callers with `HANDLER_ERROR`. Off by default: stacks leak internals. */
  exposeStack?: boolean;
  /** Largest frame accepted, in bytes, checked before decoding. Defaults to 1 MiB. */
  maxMessageBytes?: number;
  /** Milliseconds a new socket has to send its HELLO. Defaults to 10 000. */
  handshakeTimeout?: number;
}

/** A handler on the server: gets the parsed input, the calling connection and the call's context. */
export type ServerHandler<TData, TIn, TOut> = (
  input: TIn,
  connection: ServerConnection<TData>,
  ctx: CallContext,
) => TOut | undefined | Promise<TOut | undefined> | void | Promise<void>;

export class ServerCore<TData> {
  readonly handlers = new Map<string, HandlerEntry>();
  readonly connections = new Set<ServerConnection<TData>>();
  /** topic -> subscribed connections. Bun also keeps its own native copy. */
  readonly topics = new Map<string, Set<ServerConnection<TData>>>();
  readonly log: ((msg: string) => void) | undefined;
  readonly exposeStack: boolean;
  readonly maxMessageBytes: number;
  publisher: Publisher | null = null;
  closing = false;
  /** Every open socket, handshake done or not. */
  private readonly accepted = new Set<ServerConnection<TData>>();
  private readonly opts: ServerOptions<TData>;

  constructor(opts: ServerOptions<TData>) {
    this.opts = opts;
    this.log = opts.verbose ? (msg) => console.log(`[chatter] server: ${msg}`) : undefined;
    this.exposeStack = opts.exposeStack ?? false;
    this.maxMessageBytes = opts.maxMessageBytes ?? 1024 * 1024;
  }

  /** Decides, during the upgrade, whether a client may connect. */
  admit(request: Request, ip: string | null): Admission | Response | Promise<Admission | Response> {
    if (this.closing) return new Response("Server is shutting down", { status: 503 });
    return admit(request, ip, this.opts.getConnectionData);
  }

  open(socket: ServerSocket, admission: Admission): ServerConnection<TData> {
    const conn = new ServerConnection<TData>(this, socket, admission.clientId, admission.data as TData);
    this.accepted.add(conn);
    conn.helloTimer = setTimeout(() => {
      this.log?.(`client ${conn.clientId} sent no HELLO in time; closing`);
      socket.close(CloseCode.HandshakeTimeout, "no HELLO received in time");
    }, this.opts.handshakeTimeout ?? 10_000);
    return conn;
  }

  message(conn: ServerConnection<TData>, message: string | Uint8Array): void {
    if (typeof message === "string") return this.protocolError(conn, "text frames are not part of the protocol");
    if (message.byteLength > this.maxMessageBytes) {
      this.log?.(`client ${conn.clientId} sent ${message.byteLength} bytes, over maxMessageBytes`);
      return conn.socket.close(
        CloseCode.TooBig,
        `message of ${message.byteLength} bytes exceeds maxMessageBytes (${this.maxMessageBytes})`,
      );
    }
    try {
      const frame = decodeFrame(message);
      if (conn.ready) conn.peer.receive(frame);
      else if (frame[0] === FrameType.Hello) this.handshake(conn, frame);
      else this.protocolError(conn, "the first frame must be HELLO");
    } catch (err) {
      if (err instanceof ChatterError && err.code === "PROTOCOL") this.protocolError(conn, err.message);
      else this.report(err, conn);
    }
  }

  /** Closes a connection that broke the protocol, with a reason naming what. */
  protocolError(conn: ServerConnection<TData>, why: string): void {
    const reason = why.replace(/^\[chatter\] /, "");
    this.log?.(`protocol error from client ${conn.clientId}: ${reason}`);
    // Close reasons are limited to 123 bytes by RFC 6455.
    conn.socket.close(CloseCode.ProtocolError, reason.slice(0, 120));
  }

  private handshake(conn: ServerConnection<TData>, [, version, , sessionId]: HelloFrame): void {
    clearTimeout(conn.helloTimer);
    if (version !== PROTOCOL_VERSION) {
      return conn.socket.close(CloseCode.VersionMismatch, `protocol version ${version} unsupported; server speaks ${PROTOCOL_VERSION}`);
    }
    if (sessionId.length === 0 || sessionId.length > 64) return this.protocolError(conn, "HELLO session id must be 1-64 chars");
    conn.sessionId = sessionId;
    conn.ready = true;
    this.connections.add(conn);
    conn.peer.attach(conn.socket);
    conn.socket.send(encodeFrame([FrameType.Welcome, sessionId, crypto.randomUUID(), false]));
    this.log?.(`client ${conn.clientId} connected (session ${sessionId})`);
    this.hook(() => this.opts.onOpen?.(conn), conn);
  }

  closed(conn: ServerConnection<TData>, code: number, reason: string): void {
    clearTimeout(conn.helloTimer);
    this.accepted.delete(conn);
    for (const topic of conn.topics) this.topics.get(topic)?.delete(conn);
    conn.peer.close(`socket closed with ${code}${reason ? ` (${reason})` : ""}`);
    if (!this.connections.delete(conn)) return; // Never finished its handshake: no onOpen, so no onClose.
    this.log?.(`client ${conn.clientId} disconnected: ${code} ${reason}`);
    this.hook(() => this.opts.onClose?.(conn, code, reason), conn);
  }

  /** Refuses new clients, waits for running handlers (up to `timeout` ms), then closes every socket with 1001. */
  async shutdown(timeout: number): Promise<void> {
    this.closing = true;
    const deadline = Date.now() + timeout;
    const busy = () => [...this.accepted].some((c) => c.peer.runningCount > 0);
    while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (busy()) this.log?.("shutdown deadline passed with handlers still running");
    for (const conn of this.accepted) conn.socket.close(CloseCode.GoingAway, "server is shutting down");
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
    if (this.opts.onError) this.opts.onError(err, conn);
    else console.error("[chatter] server:", err);
  }

  on(proc: Proc, handler: unknown): () => void {
    const entry = { proc, handler } as HandlerEntry;
    this.handlers.set(proc.name, entry);
    return () => {
      if (this.handlers.get(proc.name) === entry) this.handlers.delete(proc.name);
    };
  }

  subscribe(conn: ServerConnection<TData>, topic: string): void {
    if (conn.topics.has(topic)) return;
    conn.topics.add(topic);
    let members = this.topics.get(topic);
    if (!members) {
      members = new Set();
      this.topics.set(topic, members);
    }
    members.add(conn);
    conn.socket.subscribe(topic);
  }

  unsubscribe(conn: ServerConnection<TData>, topic: string): void {
    if (!conn.topics.delete(topic)) return;
    const members = this.topics.get(topic);
    members?.delete(conn);
    if (members?.size === 0) this.topics.delete(topic);
    conn.socket.unsubscribe(topic);
  }

  /** Checks the input (sync where the schema allows), then fans the frame out. */
  broadcast(topics: string | Iterable<string>, proc: Proc, input: unknown, exclude: Set<ServerConnection<TData>>): void {
    const list = typeof topics === "string" ? [topics] : [...new Set(topics)];
    const value = proc.takes === null ? null : input;
    const checked = check(proc.takes, input, proc.name, "input");
    const send = () => this.fanOut(list, encodeFrame([FrameType.Event, proc.name, value]), exclude);
    if (checked instanceof Promise) checked.then(send, (err) => this.report(err));
    else send();
  }

  /**
   * Delivers one frame to the union of the topics' subscribers, minus the
   * excluded ones. With native publish, excluded sockets and sockets already
   * reached through an earlier topic are unsubscribed for the length of one
   * synchronous publish, so each gets the frame exactly once.
   */
  private fanOut(list: string[], frame: Uint8Array, exclude: Set<ServerConnection<TData>>): void {
    const publisher = this.publisher;
    for (let i = 0; i < list.length; i++) {
      const topic = list[i] as string;
      const members = this.topics.get(topic);
      if (!members || members.size === 0) continue;
      const skip = (c: ServerConnection<TData>) => exclude.has(c) || seenBefore(c, list, i);
      if (!publisher) {
        for (const c of members) if (!skip(c)) c.socket.send(frame);
        continue;
      }
      const muted: ServerConnection<TData>[] = [];
      if (i === 0) {
        for (const c of exclude) if (members.has(c)) muted.push(c);
      } else {
        for (const c of members) if (skip(c)) muted.push(c);
      }
      for (const c of muted) c.socket.unsubscribe(topic);
      publisher.publish(topic, frame);
      for (const c of muted) c.socket.subscribe(topic);
    }
  }
}

function seenBefore(c: { topics: Set<string> }, list: string[], i: number): boolean {
  for (let j = 0; j < i; j++) if (c.topics.has(list[j] as string)) return true;
  return false;
}
