/**
 * The Node adapter: serves Chatter on an existing `node:http` or `node:https`
 * server through the `ws` package. Node has no native publish, so the core
 * loops over each topic's subscribers. Node hands over no Fetch `Request`,
 * so this file builds one (http.ts checks it as on every runtime) and writes
 * refusals onto the raw socket itself.
 * Docs: https://github.com/websockets/ws/blob/master/doc/ws.md
 */
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { AdapterHost, SocketDriver, SocketTicket } from "./adapter.ts";
import { upgradeRequest } from "./http.ts";
import type { ChatterServer } from "./index.ts";
import { hostFor } from "./registry.ts";

/** Options of `attach`. */
export interface AttachOptions {
  /** Only upgrade requests for this path (e.g. `/chatter`); others are left to other listeners. Default: every path. */
  path?: string;
}

/** What `attach` returns. */
export interface NodeAttachment {
  /** Stops taking upgrades on the HTTP server, then shuts Chatter down gracefully (see `server.close`). */
  close(options?: { timeout?: number }): Promise<void>;
}

/** A `ws` socket with what its driver needs: `ws` says when a queued message is written, and the core learns of drains. */
interface NodeSocket {
  ws: WebSocket;
  ticket: SocketTicket;
  host: AdapterHost<NodeSocket>;
}

/** The driver for `ws` sockets: past `maxBufferedBytes` a send is dropped, as Bun does at its backpressure limit. */
const driver: SocketDriver<NodeSocket> = {
  send({ ws, ticket, host }, message) {
    if (ws.readyState !== 1 || ws.bufferedAmount > host.maxBufferedBytes) return "dropped";
    if (ws.bufferedAmount === 0) {
      ws.send(message, { binary: true });
      return "sent";
    }
    // Already queued in user space: report backpressure, and say when this message has been written.
    ws.send(message, { binary: true }, () => host.drained(ticket));
    return "queued";
  },
  close: ({ ws }, code, reason) => ws.close(code, reason),
  bufferedAmount: ({ ws }) => ws.bufferedAmount,
};

/**
 * Serves a Chatter server on a Node HTTP(S) server.
 * @param chatter - the server from `createServer`
 * @param server - a `node:http` or `node:https` server
 * @param options - `path`
 * @returns a handle whose `close()` stops it
 */
// biome-ignore lint/suspicious/noExplicitAny: any connection data type
export function attach(chatter: ChatterServer<any>, server: Server, options: AttachOptions = {}): NodeAttachment {
  const host = hostFor(chatter, driver);
  const wss = new WebSocketServer({ noServer: true, maxPayload: host.maxMessageBytes, perMessageDeflate: false });

  // With a path, other listeners may serve other paths; a request too malformed to have one is ours only if nobody else listens.
  const claims = (request: Request | Response): boolean => {
    if (!options.path) return true;
    if (request instanceof Response) return server.listenerCount("upgrade") === 1;
    return new URL(request.url).pathname === options.path;
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const request = toRequest(req);
    if (!claims(request)) {
      // Someone else's path; if nobody else listens, do not leave the socket hanging.
      if (server.listenerCount("upgrade") === 1) socket.destroy();
      return;
    }
    // Node took its own 'error' listener off for the upgrade: until ws adds one, a reset must not crash the process.
    socket.on("error", () => {});
    if (request instanceof Response) return void refuse(socket, request);
    // Admission never throws (a bug in it is a 500); a rejection here is one too.
    Promise.resolve(host.admit(request, req.socket.remoteAddress ?? null)).then(
      (ticket) => {
        if (ticket instanceof Response) return refuse(socket, ticket);
        if (socket.destroyed) return;
        wss.handleUpgrade(req, socket, head, (ws) => serve(host, ws, ticket));
      },
      (err) => {
        host.report(err);
        refuse(socket, new Response("Internal Server Error", { status: 500 }));
      },
    );
  };
  server.on("upgrade", onUpgrade);

  return {
    async close(closeOptions = {}) {
      server.off("upgrade", onUpgrade);
      await chatter.close(closeOptions);
      await new Promise((resolve) => wss.close(resolve));
    },
  };
}

function serve(host: AdapterHost<NodeSocket>, ws: WebSocket, ticket: SocketTicket): void {
  host.open(ticket, { ws, ticket, host });
  ws.on("message", (data, isBinary) => host.message(ticket, isBinary ? asBytes(data) : data.toString()));
  ws.on("close", (code, reason) => host.closed(ticket, code, reason.toString()));
  // An 'error' is always followed by 'close'; without a listener it would be thrown.
  ws.on("error", () => {});
}

function asBytes(data: Buffer | ArrayBuffer | Buffer[]): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  return data instanceof ArrayBuffer ? new Uint8Array(data) : data;
}

/** The upgrade request as a Fetch `Request`, checked as on every runtime; or the 400 that refuses it. */
function toRequest(req: IncomingMessage): Request | Response {
  const secure = (req.socket as { encrypted?: boolean }).encrypted === true;
  // Every Host header: Node keeps only the first in `req.headers`, where Bun sees them all and so refuses two.
  const host = req.headersDistinct.host?.join(", ");
  const headers: [string, string][] = [];
  for (const [name, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) for (const v of value) headers.push([name, v]);
    else if (value !== undefined) headers.push([name, value]);
  }
  return upgradeRequest({ target: req.url ?? "", host, secure }, headers);
}

/** Answers a refused upgrade with the Response's status and body, then closes the socket. */
async function refuse(socket: Duplex, response: Response): Promise<void> {
  const body = await response.text().catch(() => "");
  const head = [
    `HTTP/1.1 ${response.status} ${response.statusText || "Refused"}`,
    "Connection: close",
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...[...response.headers].filter(([k]) => k.toLowerCase() !== "content-type").map(([k, v]) => `${k}: ${v}`),
  ];
  if (!socket.destroyed) socket.end(`${head.join("\r\n")}\r\n\r\n${body}`);
}
