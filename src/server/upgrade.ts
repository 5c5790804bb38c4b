/** Admission at upgrade time: who is connecting, and may they. */
import type { RateLimiter } from "./rate-limit.ts";
import { SocketLink } from "./socket.ts";

/** What `getConnectionData` learns about a connecting client. */
export interface ConnectionInfo {
  /** The upgrade request itself. */
  request: Request;
  /** The request URL, parsed. */
  url: URL;
  /** The request headers. */
  headers: Headers;
  /** The request cookies, by name. */
  cookies: Record<string, string>;
  /** The client's persistent id, as it claims it (not a secret). */
  clientId: string;
  /** The peer's IP address, where the runtime tells it. */
  ip: string | null;
}

/** The checks an upgrade goes through before `getConnectionData`. */
export interface AdmissionRules<TData> {
  getConnectionData?: ((info: ConnectionInfo) => TData | Promise<TData>) | undefined;
  /** Origins allowed to connect; requests without an Origin header (not browsers) pass. */
  allowedOrigins?: string[] | undefined;
  /** Take the client address from X-Forwarded-For (only behind a proxy you run). */
  trustProxy?: boolean | undefined;
  limiter: RateLimiter | null;
}

const ID_PATTERN = /^[\w-]{1,64}$/;

/**
 * Checks the origin and the rate limit, then builds the connection info and
 * runs `getConnectionData`. A thrown error refuses the upgrade with 401; a
 * returned or thrown `Response` is sent as is.
 * @returns the socket's link, to keep with it, or the refusal
 */
export function admit<TData>(
  request: Request,
  socketIp: string | null,
  rules: AdmissionRules<TData>,
): SocketLink | Response | Promise<SocketLink | Response> {
  const origin = request.headers.get("origin");
  if (origin && rules.allowedOrigins && !rules.allowedOrigins.includes(origin) && !rules.allowedOrigins.includes("*")) {
    return new Response(`Origin ${origin} is not allowed`, { status: 403 });
  }
  const ip = (rules.trustProxy && forwardedFor(request)) || socketIp;
  if (rules.limiter && ip && !rules.limiter.take(ip)) {
    return new Response("Too many connection attempts from this address", { status: 429, headers: { "Retry-After": "10" } });
  }
  const getConnectionData = rules.getConnectionData;
  const url = new URL(request.url);
  const cid = url.searchParams.get("cid");
  const clientId = cid && ID_PATTERN.test(cid) ? cid : crypto.randomUUID();
  if (!getConnectionData) return new SocketLink(clientId, undefined);
  const info: ConnectionInfo = {
    request,
    url,
    headers: request.headers,
    cookies: parseCookies(request.headers.get("cookie")),
    clientId,
    ip,
  };
  try {
    const data = getConnectionData(info);
    if (data instanceof Promise) return data.then((d) => accept(clientId, d), refuse);
    return accept(clientId, data);
  } catch (err) {
    return refuse(err);
  }
}

/** The first address of X-Forwarded-For: the client as the outermost proxy saw it. */
function forwardedFor(request: Request): string | null {
  return request.headers.get("x-forwarded-for")?.split(",")[0]?.trim() || null;
}

function accept(clientId: string, data: unknown): SocketLink | Response {
  return data instanceof Response ? data : new SocketLink(clientId, data);
}

function refuse(err: unknown): Response {
  return err instanceof Response ? err : new Response("Unauthorized", { status: 401 });
}

/** @returns the cookies of a `Cookie` header, by name */
export function parseCookies(header: string | null): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  if (!header) return out;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    const raw = part
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1");
    try {
      out[name] = decodeURIComponent(raw);
    } catch {
      out[name] = raw;
    }
  }
  return out;
}
