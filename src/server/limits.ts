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
  /** Per address, its count and the string it was first counted under. */
  private readonly perAddress = new Map<string, { address: string; n: number }>();
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
    if (address !== null && (this.perAddress.get(address)?.n ?? 0) >= this.maxPerAddress) {
      const body = `Too many connections from this address (maxConnectionsPerAddress ${this.maxPerAddress})`;
      return new Response(body, { status: 429, headers: { "Retry-After": "5" } });
    }
    return null;
  }

  /** @returns whether there is room; counts the connection if so */
  add(address: string | null): boolean {
    if (this.refusal(address)) return false;
    this.total++;
    if (address === null) return true;
    const count = this.perAddress.get(address);
    if (count) count.n++;
    else this.perAddress.set(address, { address, n: 1 });
    return true;
  }

  remove(address: string | null): void {
    this.total--;
    const count = address === null ? undefined : this.perAddress.get(address);
    if (count && --count.n === 0) this.perAddress.delete(count.address);
  }

  /**
   * @returns the string a counted address is kept under, so the connections from one address (behind a NAT or
   *   a proxy) share one copy, not one each
   */
  shared(address: string | null): string | null {
    return address === null ? null : (this.perAddress.get(address)?.address ?? address);
  }
}

/** What RunningCalls needs to know of a session. */
interface Caller {
  readonly clientId: string;
  readonly address: string | null;
}

/**
 * Handlers running now: in all, per client id (a client that reconnected
 * fresh while its old session still runs handlers shares one budget across
 * both) and per address (client ids cost nothing to make; addresses do).
 */
export class RunningCalls {
  private total = 0;
  private readonly perClient = new Map<string, number>();
  private readonly perAddress = new Map<string, number>();
  private readonly limits: { maxConcurrentCallsPerClient: number; maxConcurrentCallsPerAddress: number; maxRunningCalls: number };

  constructor(limits: RunningCalls["limits"]) {
    this.limits = limits;
  }

  /** @returns the `LIMIT` error that refuses another call now, or null when there is room */
  refuse(caller: Caller, proc: string): ChatterError | null {
    const { maxConcurrentCallsPerClient, maxConcurrentCallsPerAddress, maxRunningCalls } = this.limits;
    if (this.total >= maxRunningCalls) return refusal(proc, "running on the server", `maxRunningCalls ${maxRunningCalls}`);
    if ((this.perClient.get(caller.clientId) ?? 0) >= maxConcurrentCallsPerClient) {
      return refusal(proc, "from this client", `maxConcurrentCallsPerClient ${maxConcurrentCallsPerClient}`);
    }
    if (caller.address !== null && (this.perAddress.get(caller.address) ?? 0) >= maxConcurrentCallsPerAddress) {
      return refusal(proc, "from this address", `maxConcurrentCallsPerAddress ${maxConcurrentCallsPerAddress}`);
    }
    return null;
  }

  /** A handler went async: it counts until it settles. */
  started(caller: Caller): void {
    this.total++;
    bump(this.perClient, caller.clientId, 1);
    if (caller.address !== null) bump(this.perAddress, caller.address, 1);
  }

  /** A counted handler finished (or was abandoned and then finished). */
  done(caller: Caller): void {
    this.total--;
    bump(this.perClient, caller.clientId, -1);
    if (caller.address !== null) bump(this.perAddress, caller.address, -1);
  }
}

function refusal(proc: string, where: string, limit: string): ChatterError {
  return new ChatterError("LIMIT", `too many calls ${where}: "${proc}" refused (${limit})`);
}

/** Adds to a count, and forgets it at zero so the map holds only what runs now. */
function bump(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
