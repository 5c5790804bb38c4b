/**
 * HTTP helpers every adapter shares: the checks an upgrade request passes
 * before anything in it is trusted, building a Fetch `Request` where the
 * runtime gives none (Node), and the whole upgrade flow for runtimes that do
 * give one (Bun, Deno).
 */
import type { AdapterHost, SocketTicket } from "./adapter.ts";

/** An upgrade request as the runtime parsed it, before anything in it is trusted. */
export interface RawUpgrade {
  /** The request target: origin-form (`/path?query`) or absolute-form (`http://host/path?query`). */
  target: string;
  /** The Host header; its values joined by ", " when there were several. */
  host: string | null | undefined;
  /** Whether it came over TLS. */
  secure: boolean;
}

/** A host name, or an IPv4 or [IPv6] literal, and an optional port: nothing that could end the authority early (`@ / ? #`). */
const HOST = /^(?:[\w.-]{1,253}|\[[\dA-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;
const ABSOLUTE_FORM = /^(?:https?|wss?):\/\//i;

/**
 * The URL of an upgrade request: the scheme from the transport, the authority from the Host header, the path
 * and query from the target (an absolute-form target's own authority is dropped, as Bun does).
 * @param raw - the request as the runtime parsed it
 * @returns the URL, or a 400 naming what was wrong
 */
export function upgradeUrl(raw: RawUpgrade): URL | Response {
  if (!raw.host) return badRequest("Missing Host header");
  // The pattern keeps the host to itself; the parser then refuses a port over 65535 or a bad IP literal.
  if (!HOST.test(raw.host) || !URL.canParse(`http://${raw.host}/`)) return badRequest("Malformed Host header");
  const path = targetPath(raw.target);
  if (path === null) return badRequest("Malformed request target");
  try {
    return new URL(`${raw.secure ? "https" : "http"}://${raw.host}${path}`);
  } catch {
    return badRequest("Malformed request target");
  }
}

/**
 * Builds the Fetch `Request` of an upgrade, for runtimes that do not hand one over (Node), so that
 * `getConnectionData` sees the same thing on every runtime.
 * @param raw - the request as the runtime parsed it
 * @param headers - its headers, as name and value pairs
 * @returns the request, or a 400 naming what was wrong
 */
export function upgradeRequest(raw: RawUpgrade, headers: [string, string][]): Request | Response {
  const url = upgradeUrl(raw);
  if (url instanceof Response) return url;
  try {
    return new Request(url, { headers });
  } catch {
    return badRequest("Malformed header");
  }
}

/** @returns the path and query of an origin-form or absolute-form target, or null for any other form */
function targetPath(target: string): string | null {
  if (target.startsWith("/")) return target;
  if (!ABSOLUTE_FORM.test(target)) return null;
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return null;
  }
}

function badRequest(what: string): Response {
  return new Response(what, { status: 400 });
}

/**
 * The upgrade flow of a runtime that hands over a Fetch `Request` (Bun, Deno): refuse what is not a
 * WebSocket upgrade (426) or is malformed (400), run admission, then let the runtime accept the socket.
 * @param host - the adapter's host
 * @param request - the request as the runtime gave it
 * @param ip - the peer's address, where the runtime tells it
 * @param accept - upgrades the request for an admitted socket; returns what the runtime's handler must return
 * @returns the response to answer with (a refusal, or what `accept` returned)
 */
export function upgradeFetch<R>(
  host: AdapterHost<unknown>,
  request: Request,
  ip: string | null,
  accept: (ticket: SocketTicket) => R,
): R | Response | Promise<R | Response> {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("This endpoint speaks Chatter over WebSocket", { status: 426, headers: { Upgrade: "websocket" } });
  }
  // The runtime built the Request already; it must still pass the checks Node's goes through (a bad Host leaves its URL unparseable).
  const url = upgradeUrl({ target: request.url, host: request.headers.get("host"), secure: request.url.startsWith("https:") });
  if (url instanceof Response) return url;
  const finish = (ticket: SocketTicket | Response) => (ticket instanceof Response ? ticket : accept(ticket));
  const ticket = host.admit(request, ip);
  return ticket instanceof Promise ? ticket.then(finish) : finish(ticket);
}
