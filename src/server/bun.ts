/**
 * The Bun adapter: `upgrade` for `fetch`, and the `websocket` handlers. Bun's
 * ServerWebSocket sends, closes and counts its buffer itself, and Bun's
 * `server.publish` is the native pub/sub the core fans broadcasts out through.
 * Docs: https://bun.sh/docs/api/websockets
 */
import type { AdapterHost, SocketDriver, SocketTicket } from "./adapter.ts";
import { upgradeFetch } from "./http.ts";

/** The parts of Bun's `Server` that Chatter uses. */
export interface BunServerLike {
  upgrade(request: Request, options: { data: never }): boolean;
  publish(topic: string, data: Uint8Array): number;
  requestIP?(request: Request): { address: string } | null;
}

/** The parts of Bun's `ServerWebSocket` that Chatter uses. */
export interface BunSocketLike {
  /** Chatter's own state for the socket: not an API. */
  readonly data: unknown;
  send(data: Uint8Array): number;
  close(code?: number, reason?: string): void;
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  getBufferedAmount(): number;
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

type BunDriver = SocketDriver<BunSocketLike> & { server: BunServerLike | null };

/** @returns Bun's driver; its publish goes through the Bun server, first known at an upgrade */
function bunDriver(): BunDriver {
  const driver: BunDriver = {
    server: null,
    // Bun returns the bytes written, -1 when it queued the message under backpressure, 0 when it dropped it.
    send(ws, message) {
      const n = ws.send(message);
      return n > 0 ? "sent" : n === -1 ? "queued" : "dropped";
    },
    close: (ws, code, reason) => ws.close(code, reason),
    bufferedAmount: (ws) => ws.getBufferedAmount(),
    native: {
      subscribe: (ws, topic) => ws.subscribe(topic),
      unsubscribe: (ws, topic) => ws.unsubscribe(topic),
      // No server yet means no socket yet, so nobody to publish to.
      publish: (topic, message) => driver.server?.publish(topic, message) !== 0,
    },
  };
  return driver;
}

/**
 * @param connect - gives the adapter its host, for a driver
 * @returns `upgrade` and `websocket`, for `Bun.serve`
 */
export function bunAdapter(connect: (driver: SocketDriver<BunSocketLike>) => AdapterHost<BunSocketLike>) {
  const driver = bunDriver();
  const host = connect(driver);
  const ticket = (ws: BunSocketLike) => ws.data as SocketTicket;

  const upgrade = (request: Request, server: BunServerLike): UpgradeResult => {
    driver.server ??= server;
    return upgradeFetch(host as AdapterHost<unknown>, request, server.requestIP?.(request)?.address ?? null, (data) =>
      server.upgrade(request, { data: data as never }) ? undefined : new Response("WebSocket upgrade failed", { status: 400 }),
    );
  };

  const websocket: BunWebSocketHandlers = {
    maxPayloadLength: host.maxMessageBytes,
    // Past this, send() drops the message and returns 0; the core then closes the socket as a slow consumer.
    backpressureLimit: host.maxBufferedBytes,
    closeOnBackpressureLimit: false,
    // The core closes a socket silent for idleTimeout on every runtime; Bun's own timer (at most 960 s) agrees.
    idleTimeout: Math.min(960, Math.max(0, host.idleTimeout)),
    perMessageDeflate: false,
    open: (ws) => host.open(ticket(ws), ws),
    message: (ws, message) => host.message(ticket(ws), message),
    close: (ws, code, reason) => host.closed(ticket(ws), code, reason),
    drain: (ws) => host.drained(ticket(ws)),
  };

  return { upgrade, websocket };
}
