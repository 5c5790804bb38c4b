/** The states a client's connection moves through. */
export enum ConnectionState {
  /** No socket; a reconnect may be scheduled. */
  Disconnected = "disconnected",
  /** A socket is opening, or its handshake is under way. */
  Connecting = "connecting",
  /** The handshake is done; calls flow. */
  Connected = "connected",
}

/** Reconnect delays: exponential, capped, with jitter so clients do not stampede. */
export function backoffDelay(attempt: number, min: number, max: number): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
  // "Equal jitter": half fixed, half random, so the delay never collapses to zero.
  return ceiling / 2 + Math.random() * (ceiling / 2);
}
