/** Admission at upgrade time: is the request well formed, who is connecting, and may they. */
import { limitKey, type RateLimiter } from "./rate-limit.ts";
import { Refused } from "./refusal.ts";
import { SocketState } from "./socket-state.ts";

/** What `getConnectionData` learns about a connecting client. */
export interface ConnectionRequest {
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
  getConnectionData?: ((info: ConnectionRequest) => TData | Promise<TData>) | undefined;
  /** Origins allowed to connect; requests without an Origin header (not browsers) pass. */
  allowedOrigins?: string[] | undefined;
  /**
   * Take the client address from X-Forwarded-For, only behind proxies you run. Each proxy appends the address
   * it got the request from, so entries further left are only as honest as the client. `true` trusts one
   * proxy: the rightmost entry is the client. `n` trusts a chain of `n`: the entry `n` from the right (the
   * leftmost if there are fewer). An entry that is not an IP address falls back to the socket's address.
   */
  trustProxy?: boolean | number | undefined;
  limiter: RateLimiter | null;
  /** @returns the refusal when the server has no room for another connection from this address, or null */
  capacity?: (address: string | null) => Response | null;
}

const ID_PATTERN = /^[\w-]{1,64}$/;

/**
 * Checks the origin and the rate limit, then builds the connection info and
 * runs `getConnectionData`. A thrown error or a returned or thrown `Response`
 * refuses the connection (the core tells the client why: refusal.ts).
 * @returns the socket's link, to keep with it, or the refusal
 */
export function admit<TData>(
  request: Request,
  socketIp: string | null,
  rules: AdmissionRules<TData>,
): SocketState | Response | Refused | Promise<SocketState | Response | Refused> {
  const origin = request.headers.get("origin");
  if (origin && rules.allowedOrigins && !rules.allowedOrigins.includes(origin) && !rules.allowedOrigins.includes("*")) {
    return new Response(`Origin ${origin} is not allowed`, { status: 403 });
  }
  const ip = clientIp(request, socketIp, rules.trustProxy);
  const wait = ip && rules.limiter ? rules.limiter.take(ip) : 0;
  if (wait > 0) return tooManyAttempts(wait);
  const address = ip === null ? null : limitKey(ip);
  const full = rules.capacity?.(address);
  if (full) return full;
  const getConnectionData = rules.getConnectionData;
  // The adapters refused a request whose URL does not parse (see upgradeUrl), before anything here ran.
  const url = new URL(request.url);
  const cid = url.searchParams.get("cid");
  const clientId = cid && ID_PATTERN.test(cid) ? cid : crypto.randomUUID();
  if (!getConnectionData) return new SocketState(clientId, undefined, address);
  const info: ConnectionRequest = {
    request,
    url,
    headers: request.headers,
    cookies: parseCookies(request.headers.get("cookie")),
    clientId,
    ip,
  };
  try {
    const data = getConnectionData(info);
    if (data instanceof Promise) return data.then((d) => accept(clientId, d, address), refuse);
    return accept(clientId, data, address);
  } catch (err) {
    return refuse(err);
  }
}

/** The client's address: the socket's, or the one the outermost trusted proxy appended to X-Forwarded-For. */
function clientIp(request: Request, socketIp: string | null, trustProxy: boolean | number | undefined): string | null {
  const hops = trustProxy === true ? 1 : Math.floor(Number(trustProxy) || 0);
  const header = hops > 0 ? request.headers.get("x-forwarded-for") : null;
  if (!header) return socketIp;
  const entries = header.split(",");
  return ipLiteral(entries[Math.max(0, entries.length - hops)] ?? "") ?? socketIp;
}

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** @returns the IPv4 or IPv6 address in an X-Forwarded-For entry (some proxies add a port, and brackets around IPv6), or null */
function ipLiteral(entry: string): string | null {
  const text = entry.trim();
  // Longer than any address with a port: not one, and not worth parsing.
  if (text.length > 64) return null;
  const ip = /^\[(.+)\](?::\d{1,5})?$/.exec(text)?.[1] ?? /^([\d.]+):\d{1,5}$/.exec(text)?.[1] ?? text;
  if (IPV4.test(ip)) return ip;
  return /^[\dA-Fa-f:.]{2,45}$/.test(ip) && ip.includes(":") && URL.canParse(`http://[${ip}]/`) ? ip : null;
}

/** A 429 whose Retry-After says, in whole seconds rounded up, when the address has a token again. */
function tooManyAttempts(waitMs: number): Response {
  const headers = { "Retry-After": String(Math.ceil(waitMs / 1000)) };
  return new Response("Too many connection attempts from this address", { status: 429, headers });
}

function accept(clientId: string, data: unknown, address: string | null): SocketState | Response {
  return data instanceof Response ? data : new SocketState(clientId, data, address);
}

function refuse(err: unknown): Response | Refused {
  return err instanceof Response ? err : new Refused(err);
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
