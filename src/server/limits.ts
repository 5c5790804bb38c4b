/**
 * Server-wide bounds that no single connection sees: how many sockets and
 * parked sessions the server holds (in all, and per client address), and
 * how many handlers run at once (in all, and per client id). Each one is a
 * count that an attacker with many connections cannot grow past its limit.
 */
import { ChatterError } from "../errors.ts";

/** Sockets and parked sessions, in all and per address. */
export class Occupancy {
  /** Open sockets plus sessions waiting for a resume. */
  total = 0;
  private readonly perAddress = new Map<string, number>();
  private readonly max: number;
  private readonly maxPerAddress: number;

  constructor(max: number, maxPerAddress: number) {
    this.max = max;
    this.maxPerAddress = maxPerAddress;
  }

  /** @returns why another connection from `address` is refused (an HTTP response), or null when there is room */
  refusal(address: string | null): Response | null {
    if (this.total >= this.max) {
      return new Response(`Server is full (maxConnections ${this.max})`, { status: 503, headers: { "Retry-After": "5" } });
    }
    if (address !== null && (this.perAddress.get(address) ?? 0) >= this.maxPerAddress) {
      const body = `Too many connections from this address (maxConnectionsPerAddress ${this.maxPerAddress})`;
      return new Response(body, { status: 429, headers: { "Retry-After": "5" } });
    }
    return null;
  }

  /** @returns whether there is room; counts the connection if so */
  add(address: string | null): boolean {
    if (this.refusal(address)) return false;
    this.total++;
    if (address !== null) this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    return true;
  }

  remove(address: string | null): void {
    this.total--;
    if (address === null) return;
    const n = (this.perAddress.get(address) ?? 1) - 1;
    if (n > 0) this.perAddress.set(address, n);
    else this.perAddress.delete(address);
  }
}

/**
 * Handlers running now, per client id and in all. A client that reconnects
 * with a fresh session while its old one still runs handlers shares one
 * budget across both.
 */
export class RunningCalls {
  private total = 0;
  private readonly perClient = new Map<string, number>();
  private readonly maxPerClient: number;
  private readonly max: number;

  constructor(maxPerClient: number, max: number) {
    this.maxPerClient = maxPerClient;
    this.max = max;
  }

  /** @returns the `LIMIT` error that refuses another call now, or null when there is room */
  refuse(clientId: string, proc: string): ChatterError | null {
    if (this.total >= this.max) {
      return new ChatterError("LIMIT", `too many calls running on the server: "${proc}" refused (maxRunningCalls ${this.max})`);
    }
    if ((this.perClient.get(clientId) ?? 0) >= this.maxPerClient) {
      const limit = `maxConcurrentCallsPerClient ${this.maxPerClient}`;
      return new ChatterError("LIMIT", `too many concurrent calls from this client: "${proc}" refused (${limit})`);
    }
    return null;
  }

  /** A handler went async: it counts until it settles. */
  started(clientId: string): void {
    this.total++;
    this.perClient.set(clientId, (this.perClient.get(clientId) ?? 0) + 1);
  }

  /** A counted handler finished (or was abandoned and then finished). */
  done(clientId: string): void {
    this.total--;
    const n = (this.perClient.get(clientId) ?? 1) - 1;
    if (n > 0) this.perClient.set(clientId, n);
    else this.perClient.delete(clientId);
  }
}
