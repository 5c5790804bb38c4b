/**
 * The Bun adapter: `upgrade` for `fetch`, and the `websocket` handlers.
 * Bun's ServerWebSocket already has send/close/subscribe/unsubscribe, so it
 * is the core's ServerSocket as it is, and `server.publish` fans out natively.
 * Docs: https://bun.sh/docs/api/websockets
 */
import type { ServerCore } from "./core.ts";
import type { ServerSocket, SocketLink } from "./socket.ts";
import { upgradeUrl } from "./upgrade.ts";

/**
 * What Chatter keeps on each Bun socket (`ws.data`): the core's own state for
 * it, not an API. Per-connection data lives on the connection (`conn.data`).
 */
export type BunSocketData = SocketLink;

/** The parts of Bun's `Server` that Chatter uses. */
export interface BunServerLike {
  upgrade(request: Request, options: { data: BunSocketData }): boolean;
  publish(topic: string, data: Uint8Array): number;
  requestIP?(request: Request): { address: string } | null;
}

/** The parts of Bun's `ServerWebSocket` that Chatter uses. */
export interface BunSocketLike extends ServerSocket {
  data: BunSocketData;
}

/** The `websocket` object to pass to `Bun.serve`. */
export interface BunWebSocketHandlers {
  maxPayloadLength: number;
  backpressureLimit: number;
  closeOnBackpressureLimit: boolean;
  idleTimeout: number;
  perMessageDeflate: boolean;
  open(ws: BunSocketLike): void;
  message(ws: BunSocketLike, message: string | Uint8Array): void;
  close(ws: BunSocketLike, code: number, reason: string): void;
  drain(ws: BunSocketLike): void;
}

export type UpgradeResult = Response | undefined | Promise<Response | undefined>;

/** @returns `upgrade` and `websocket`, bound to one server core */
export function bunAdapter<TData>(core: ServerCore<TData>) {
  const upgrade = (request: Request, server: BunServerLike): UpgradeResult => {
    // The Bun server is first known here; publish needs it.
    core.topics.publisher ??= server;
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("This endpoint speaks Chatter over WebSocket", { status: 426, headers: { Upgrade: "websocket" } });
    }
    // Bun built the Request already; it must still pass the checks Node's goes through (a bad Host leaves its URL unparseable).
    const url = upgradeUrl({ target: request.url, host: request.headers.get("host"), secure: request.url.startsWith("https:") });
    if (url instanceof Response) return url;
    const finish = (link: SocketLink | Response): Response | undefined => {
      if (link instanceof Response) return link;
      if (server.upgrade(request, { data: link })) return undefined;
      return new Response("WebSocket upgrade failed", { status: 400 });
    };
    const link = core.admit(request, server.requestIP?.(request)?.address ?? null);
    return link instanceof Promise ? link.then(finish) : finish(link);
  };

  const websocket: BunWebSocketHandlers = {
    maxPayloadLength: core.maxRuntimeMessageBytes,
    // Past this, send() drops the frame and returns 0; the core then closes the socket as a slow consumer.
    backpressureLimit: core.maxBufferedBytes,
    closeOnBackpressureLimit: false,
    // Clients ping every 30 s by default; the core closes a socket silent for idleTimeout, and Bun does too.
    idleTimeout: Math.min(960, Math.max(0, core.limits.idleTimeout)),
    perMessageDeflate: false,
    open(ws) {
      core.open(ws.data, ws);
    },
    message(ws, message) {
      core.message(ws.data, message);
    },
    close(ws, code, reason) {
      core.closed(ws.data, code, reason);
    },
    drain(ws) {
      core.drained(ws.data);
    },
  };

  return { upgrade, websocket };
}
