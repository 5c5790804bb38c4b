/**
 * What a refused connection means to the client. The server's REFUSED frame becomes a ChatterError with its
 * `retryAfter`, and its code says whether waiting can mend it (the client tries again later) or not (the
 * client stops, unless a `url()` function may bring new credentials).
 */
import type { ChatterError } from "../errors.ts";
import { fromWireError } from "../errors.ts";
import type { Refusal } from "../wire/frames.ts";

/** setTimeout's longest delay; a longer one fires at once. */
export const MAX_DELAY = 2 ** 31 - 1;

/** Refusals that pass with time: the client waits (at least `retryAfter`) and tries again. */
const TRANSIENT = new Set(["RATE_LIMITED", "UNAVAILABLE"]);

/** @returns whether `refusal` passes with time, so trying again later may succeed */
export function isTransient(refusal: ChatterError): boolean {
  return TRANSIENT.has(String(refusal.code));
}

/** @returns the refusal from a REFUSED frame as an error, with `retryAfter` (ms) when the server gave one */
export function refusalError(refusal: Refusal): ChatterError {
  const error = fromWireError(refusal);
  if (typeof refusal.retryAfter === "number" && refusal.retryAfter > 0) Object.assign(error, { retryAfter: refusal.retryAfter });
  return error;
}
