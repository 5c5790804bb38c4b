/**
 * The Deno adapter: `upgrade` for `Deno.serve`. Deno hands over a Fetch
 * Request, so the upgrade is the shared flow (`upgradeFetch`), and its server
 * socket is the standard WebSocket. That socket has no drain event and no cap
 * on what it queues, so the driver reads `bufferedAmount` itself: a send past
 * `maxBufferedBytes` is dropped, one that leaves more than a high-water mark
 * waiting is "queued", and one timer, running only while some socket is
 * queued, tells the core when each has drained. `upgradeWebSocket` takes no
 * limit on incoming messages either, so `maxMessageBytes` is the core's check
 * alone (Deno's own cap is 64 MiB).
 * Docs: https://docs.deno.com/api/deno/~/Deno.upgradeWebSocket
 */
import type { AdapterHost, SocketDriver, SocketTicket } from "./adapter.ts";
import { upgradeFetch } from "./http.ts";
import type { ChatterServer } from "./index.ts";
import { hostFor } from "./registry.ts";

/** The one Deno API used here (no Deno types are installed; its server socket is the standard WebSocket). */
declare const Deno: {
  upgradeWebSocket(request: Request, options?: { idleTimeout?: number }): { socket: WebSocket; response: Response };
};

/** The part of `Deno.ServeHandlerInfo` that `upgrade` reads: the peer's address (no hostname on a Unix socket). */
export interface DenoServeInfo {
  remoteAddr: { transport: string; hostname?: string };
}

/** Bytes Deno may hold for a socket before a send reports "queued" (the core holds calls back until it drains). */
const highWater = (host: AdapterHost<WebSocket>) => host.maxBufferedBytes / 4;
/** How often queued sockets are looked at, while there are any. */
const DRAIN_POLL_MS = 5;

/** Each open socket's host and ticket: what the driver needs to tell the core it drained. */
const seats = new WeakMap<WebSocket, { host: AdapterHost<WebSocket>; ticket: SocketTicket }>();
/** Sockets with more than their high-water mark waiting, until they drain or close. */
const queued = new Set<WebSocket>();
let poll: ReturnType<typeof setInterval> | undefined;

const denoDriver: SocketDriver<WebSocket> = {
  send(socket, message) {
    const seat = seats.get(socket);
    // Deno discards a send to a closing socket without a word; say so, as the other runtimes do.
    if (!seat || socket.readyState !== WebSocket.OPEN || socket.bufferedAmount > seat.host.maxBufferedBytes) return "dropped";
    socket.send(message);
    // Deno writes asynchronously, so a little is always waiting right after a send; only more than that is backpressure.
    if (socket.bufferedAmount <= highWater(seat.host)) return "sent";
    queued.add(socket);
    poll ??= setInterval(pollDrained, DRAIN_POLL_MS);
    return "queued";
  },
  close: (socket, code, reason) => socket.close(code, reason),
  bufferedAmount: (socket) => socket.bufferedAmount,
};

/** Tells the core of each queued socket that is back under the high-water mark; stops once none is left. */
function pollDrained(): void {
  for (const socket of queued) {
    const seat = seats.get(socket);
    if (seat && socket.bufferedAmount > highWater(seat.host)) continue;
    queued.delete(socket);
    seat?.host.drained(seat.ticket);
  }
  if (queued.size > 0) return;
  clearInterval(poll);
  poll = undefined;
}

/**
 * Serves Chatter from a `Deno.serve` handler: `Deno.serve((req, info) => upgrade(chatter, req, info))`.
 * @param chatter - the server from `createServer`
 * @param request - the request the handler was given
 * @param info - the handler's second argument, for the peer's address (rate and connection limits use it)
 * @returns the response that opens the WebSocket, or the HTTP response that refuses the upgrade
 */
// biome-ignore lint/suspicious/noExplicitAny: a server of any connection data type
export function upgrade(chatter: ChatterServer<any>, request: Request, info?: DenoServeInfo): Response | Promise<Response> {
  const host = hostFor(chatter, denoDriver);
  return upgradeFetch(host, request, info?.remoteAddr.hostname ?? null, (ticket) => accept(host, request, ticket));
}

function accept(host: AdapterHost<WebSocket>, request: Request, ticket: SocketTicket): Response {
  let upgraded: { socket: WebSocket; response: Response };
  try {
    // Deno pings a socket silent for half of idleTimeout and closes it if nothing comes back; the core's own check still holds.
    upgraded = Deno.upgradeWebSocket(request, { idleTimeout: host.idleTimeout });
  } catch {
    return new Response("WebSocket upgrade failed", { status: 400 });
  }
  const { socket, response } = upgraded;
  socket.binaryType = "arraybuffer";
  seats.set(socket, { host, ticket });
  socket.onopen = () => host.open(ticket, socket);
  socket.onmessage = (event) => host.message(ticket, typeof event.data === "string" ? event.data : new Uint8Array(event.data));
  socket.onclose = (event) => {
    // Deno can fire close twice (1005, then 0 when a write it still had fails): the core hears of it once.
    if (!seats.delete(socket)) return;
    queued.delete(socket);
    host.closed(ticket, event.code, event.reason);
  };
  return response;
}
