/**
 * Refusing a connection so that a browser sees why. A browser's WebSocket
 * cannot read the HTTP status of a failed upgrade, so a refused upgrade is
 * accepted, told why in a REFUSED frame, and closed with a code that says
 * the same (PROTOCOL.md, "REFUSED").
 */
import { ChatterError } from "../errors.ts";
import { CloseCode, type Refusal } from "../wire/frames.ts";

/** Something `getConnectionData` threw: it refuses the connection, as a `Response` does. */
export class Refused {
  constructor(readonly reason: unknown) {}
}

/** HTTP statuses a refusal `Response` may carry, and the code the client sees for each. */
const CODES: Record<number, string> = { 401: "UNAUTHORIZED", 403: "FORBIDDEN", 429: "RATE_LIMITED", 503: "UNAVAILABLE" };

/**
 * @param reason - what refused: a `Response`, a `ChatterError` (its code and message reach the client as they
 *   are), or anything else thrown by `getConnectionData` (the client sees UNAUTHORIZED, not its message)
 * @returns the refusal, as the REFUSED frame carries it
 */
export async function refusalOf(reason: unknown): Promise<Refusal> {
  if (reason instanceof ChatterError) return { code: String(reason.code), message: reason.message };
  if (reason instanceof Refused) return refusalOf(reason.reason);
  if (!(reason instanceof Response))
    return { code: "UNAUTHORIZED", message: "the server refused the connection (getConnectionData threw)" };
  const body = await reason.text().catch(() => "");
  const refusal: Refusal = {
    // Any server error is one to wait out, not a verdict on the client.
    code: CODES[reason.status] ?? (reason.status >= 500 ? "UNAVAILABLE" : "REFUSED"),
    message: (body || reason.statusText || `refused with HTTP status ${reason.status}`).slice(0, 1024),
  };
  const after = Number(reason.headers.get("retry-after"));
  if (after > 0) refusal.retryAfter = Math.ceil(after * 1000);
  return refusal;
}

/**
 * Refused sockets open at once, server-wide, past which a refusal is a plain HTTP response again: a flood of
 * refused upgrades (say, far past the rate limit) must not hold a socket each.
 */
export const MAX_REFUSING = 1024;

/** The other way round: the status that goes with each code. */
const STATUSES: Record<string, number> = Object.fromEntries(Object.entries(CODES).map(([status, code]) => [code, Number(status)]));

/** @returns the refusal as an HTTP response, for when no socket can be spared to carry it */
export function refusalResponse(refusal: Refusal): Response {
  const headers: Record<string, string> = {};
  if (refusal.retryAfter) headers["Retry-After"] = String(Math.ceil(refusal.retryAfter / 1000));
  return new Response(`${refusal.code}: ${refusal.message}`, { status: STATUSES[refusal.code] ?? 401, headers });
}

/** @returns the close code that goes with a refusal */
export function closeCodeOf(refusal: Refusal): number {
  if (refusal.code === "FORBIDDEN") return CloseCode.Forbidden;
  if (refusal.code === "RATE_LIMITED") return CloseCode.RateLimited;
  if (refusal.code === "UNAVAILABLE") return CloseCode.TryAgainLater;
  return CloseCode.Unauthorized;
}
