import { type CallSender, callSteps } from "../engine/call-steps.ts";
import type { CallContext } from "../engine/context.ts";
import { addMiddleware, type Middleware } from "../engine/middleware.ts";
import type { CallOptions } from "../engine/types.ts";
import { ChatterError } from "../errors.ts";
import { type CallArgs, type HandlerOutput, type InputArgs, type ParsedInputOf, type Proc, parse, type ResultOf } from "../proc.ts";
import { broadcastFrom } from "./broadcast.ts";
import { type BunServerLike, type BunWebSocketHandlers, bunAdapter, type UpgradeResult } from "./bun.ts";
import type { ClusterMember } from "./cluster.ts";
import { ClusterMembership, localClient } from "./cluster-node.ts";
import { type ServerConnection, sessionsOf } from "./connection.ts";
import { ServerCore } from "./core.ts";
import type { ServerHandler, ServerOptions } from "./options.ts";
import { coreOf, hostFor, register } from "./registry.ts";

/** Options of `server.broadcast`. */
export interface BroadcastOptions<TData> {
  /** Connections to leave out. */
  exclude?: Iterable<ServerConnection<TData>>;
  /**
   * For what is stale a moment later (typing indicators): not kept for replay after a drop, and skipped for
   * sockets that are behind (anything waiting in their send buffer) or away. Defaults to `false`.
   */
  volatile?: boolean;
}

/** Some topics of a server, from `server.in(topics)`. */
export interface TopicScope<TData> {
  /**
   * Calls a procedure on every connection subscribed to any of the scope's topics, as `server.broadcast` does.
   * @param proc - the procedure to call
   * @param args - its input (checked against `takes` first), then `{ exclude }`
   * @returns a promise that resolves once the broadcast is handed to the subscribers (with a cluster: once the
   *   cluster's log has it), or rejects with `VALIDATION`
   */
  broadcast<P extends Proc>(proc: P, ...args: [...InputArgs<P>, options?: BroadcastOptions<TData>]): Promise<void>;
}

/** Options of `server.close`. */
export interface CloseOptions {
  /** Milliseconds to wait for running handlers before closing sockets. Defaults to 10 000. */
  timeout?: number;
}

/**
 * A Chatter server. Implement procedures with `on`, call clients with
 * `broadcast` or through a connection, and wire it into Bun with `upgrade`
 * and `websocket`.
 */
export class ChatterServer<TData = unknown> {
  /** The Bun adapter, made when `upgrade` or `websocket` is first read (a server served by Node never makes it). */
  #bun: ReturnType<typeof bunAdapter> | null = null;

  constructor(options: ServerOptions<TData> = {}) {
    const core = new ServerCore(options);
    if (options.cluster) core.cluster = new ClusterMembership(core, options.cluster);
    register(this, core);
  }

  #bunAdapter(): ReturnType<typeof bunAdapter> {
    this.#bun ??= bunAdapter((driver) => hostFor(this, driver));
    return this.#bun;
  }

  /** Hand the request to this from Bun's `fetch`: `return chatter.upgrade(req, server)`. */
  get upgrade(): (request: Request, server: BunServerLike) => UpgradeResult {
    return this.#bunAdapter().upgrade;
  }

  /** Pass this to `Bun.serve` as `websocket`. */
  get websocket(): BunWebSocketHandlers {
    return this.#bunAdapter().websocket;
  }

  /**
   * Calls a procedure on a client by its id, wherever in the cluster it is
   * connected (on this instance, or through the cluster backend).
   * @param clientId - the client's `clientId`
   * @param proc - the procedure, made with `createProc`
   * @param args - its input, then `{ timeout, signal }`
   * @returns the client's answer; rejects with `NOT_FOUND` if no instance has the client
   */
  async callClient<P extends Proc>(clientId: string, proc: P, ...args: CallArgs<P, CallOptions>): Promise<ResultOf<P>> {
    const core = coreOf(this);
    const local = localClient(core, clientId);
    if (local) return local.call(proc, ...args);
    if (proc.yields !== null) throw new ChatterError("NOT_IMPLEMENTED", `"${proc.name}" yields a stream: read it with connection.stream()`);
    const cluster = core.cluster;
    if (!cluster) throw new ChatterError("NOT_FOUND", `no connection for client "${clientId}"`);
    const remote: CallSender = {
      start: (_proc, value, timeout, signal) =>
        cluster.bus.call(clientId, proc.name, value, timeout, signal).then((answer) => parse(proc.returns, answer, proc.name, "output")),
    };
    return callSteps(proc, args[0], args[1] as CallOptions | undefined, remote) as Promise<ResultOf<P>>;
  }

  /** @returns how many connections are subscribed to the topic, across the cluster when there is one */
  presence(topic: string): Promise<number> {
    const core = coreOf(this);
    const cluster = core.cluster;
    return cluster ? cluster.bus.presenceOf(topic) : Promise.resolve(core.topics.index.get(topic)?.size ?? 0);
  }

  /**
   * Lists who is subscribed to a topic: every connection, on every instance of a cluster, with its data.
   * `presence(topic)` is the cheap count; this asks every instance.
   * @returns `{ clientId, sessionId, data, instance }` per connection; rejects with `TIMEOUT` if an instance
   *   does not answer within 5 s, or `DISCONNECTED` if the cluster backend is unreachable
   */
  members(topic: string): Promise<ClusterMember<TData>[]> {
    const core = coreOf(this);
    if (core.cluster) return core.cluster.bus.members(topic) as Promise<ClusterMember<TData>[]>;
    const list = [...(core.topics.index.get(topic) ?? [])].map((s) => ({
      clientId: s.clientId,
      sessionId: s.sessionId,
      data: s.data as TData,
      instance: core.instanceId,
    }));
    return Promise.resolve(list);
  }

  /**
   * Wraps every call from the clients, in registration order, around its handler. A middleware gets the input
   * parsed by `takes`, the calling connection, the call's context (`ctx.proc` names the procedure) and `next`:
   * throw a `ChatterError` to refuse, return `next(input)` to go on (with a changed input if you like), and
   * change or time what it resolves to; the final result is checked against `returns`.
   * @param middleware - `(input, connection, ctx, next) => result`
   * @returns a function that removes it
   */
  use(middleware: Middleware<ServerConnection<TData>>): () => void {
    return addMiddleware(coreOf(this).peerOptions, middleware);
  }

  /**
   * Implements a procedure for every client to call.
   * @param proc - the procedure, made with `createProc`
   * @param handler - gets the parsed input, the calling connection and a context with an abort `signal`
   * @returns a function that removes the handler
   */
  on<P extends Proc>(proc: P, handler: ServerHandler<TData, ParsedInputOf<P>, HandlerOutput<P>>): () => void {
    return coreOf(this).on(proc, handler);
  }

  /**
   * Calls a procedure on every connection subscribed to any of the topics.
   * Each subscriber gets it once, however many of the topics it is in.
   * @param topics - a topic or an iterable of topics
   * @param proc - the procedure to call
   * @param args - its input (checked against `takes` first), then `{ exclude }`
   * @returns a promise that resolves once the broadcast is handed to the subscribers (with a cluster: once the
   *   cluster's log has it), or rejects with
   *   `VALIDATION` (then nothing is sent). It never throws; a rejection nobody takes at once goes to `onError`.
   */
  broadcast<P extends Proc>(
    topics: string | Iterable<string>,
    proc: P,
    ...args: [...InputArgs<P>, options?: BroadcastOptions<TData>]
  ): Promise<void> {
    const options = args[1] as BroadcastOptions<TData> | undefined;
    const exclude = sessionsOf(options?.exclude as Iterable<ServerConnection> | undefined);
    return broadcastFrom(coreOf(this), topics, proc, args[0], exclude, options?.volatile === true);
  }

  /**
   * Scopes broadcasts to some topics: `server.in("room").broadcast(proc, input)` is
   * `server.broadcast("room", proc, input)`.
   * @param topics - a topic or an iterable of topics (taken now, so the scope can be kept and reused)
   * @returns the scope, with `broadcast(proc, input?, { exclude? })`
   */
  in(topics: string | Iterable<string>): TopicScope<TData> {
    const list = typeof topics === "string" ? topics : [...topics];
    return {
      broadcast: (proc, ...args) => this.broadcast(list, proc, ...args),
    };
  }

  /** @returns the first open connection for which `where` is truthy */
  find(where: (connection: ServerConnection<TData>) => unknown): ServerConnection<TData> | undefined {
    for (const conn of this.connections) if (where(conn)) return conn;
    return undefined;
  }

  /** @returns every open connection for which `where` is truthy */
  filter(where: (connection: ServerConnection<TData>) => unknown): ServerConnection<TData>[] {
    const out: ServerConnection<TData>[] = [];
    for (const conn of this.connections) if (where(conn)) out.push(conn);
    return out;
  }

  /** The open connections. */
  get connections(): ReadonlySet<ServerConnection<TData>> {
    return coreOf(this).connections as ReadonlySet<ServerConnection<TData>>;
  }

  /**
   * Shuts down gracefully: refuses new connections, waits up to `timeout` for
   * running handlers, then closes every socket with 1001 (going away).
   * It does not stop your HTTP server; call `server.stop()` after.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return coreOf(this).shutdown(options.timeout ?? 10_000);
  }
}

/**
 * Creates a Chatter server.
 * @param options - `getConnectionData`, `onOpen`, `onClose` and limits
 * @returns the server; pass `upgrade` and `websocket` to `Bun.serve`
 */
export function createServer<TData = unknown>(options?: ServerOptions<TData>): ChatterServer<TData> {
  return new ChatterServer(options);
}

export type { CallContext, ServerConnection, ServerHandler, ServerOptions };
