/**
 * Upgrades per client address, as token buckets: an address may make `max` upgrades at once and earns them
 * back at `max` per window, so no window boundary lets twice `max` through. Each bucket is kept as one
 * number, the time it is full again (GCRA); a full bucket is the same as none, so those are pruned.
 */

/** How many upgrades an address may make. */
export interface RateLimitOptions {
  /** Upgrades an address may make at once, and earns back over each window. */
  max: number;
  /** The window over which an address earns `max` upgrades back, in milliseconds. */
  windowMs: number;
}

/** Token buckets per address (per /64 for IPv6), in a table of bounded size. */
export class RateLimiter {
  /** Per key, the time its bucket is full again; the map's order is least recently used first. */
  private readonly fullAt = new Map<string, number>();
  private readonly opts: RateLimitOptions;
  private readonly maxAddresses: number;
  /** Milliseconds to earn one token. */
  private readonly interval: number;
  private nextPrune = 0;

  /**
   * @param opts - the bucket's size and the window it refills over
   * @param maxAddresses - addresses tracked at most; past it, the least recently seen is forgotten (its bucket starts full)
   */
  constructor(opts: RateLimitOptions, maxAddresses = 100_000) {
    this.opts = opts;
    this.maxAddresses = maxAddresses;
    this.interval = opts.windowMs / opts.max;
  }

  /** Number of addresses tracked now. */
  get size(): number {
    return this.fullAt.size;
  }

  /**
   * Spends one of the address's tokens, if it has one.
   * @param ip - the client's address
   * @param now - the time, in milliseconds
   * @returns 0 if the upgrade may go ahead, else the milliseconds until the address has a token again
   */
  take(ip: string, now = Date.now()): number {
    if (now >= this.nextPrune) this.prune(now);
    const key = limitKey(ip);
    const fullAt = Math.max(this.fullAt.get(key) ?? now, now);
    // A token spent puts the full time one interval later; more than a window ahead, the bucket was empty.
    const wait = fullAt + this.interval - now - this.opts.windowMs;
    this.touch(key, wait > 0 ? fullAt : fullAt + this.interval);
    return Math.max(0, wait);
  }

  /** Records a key as the most recently used, making room for it if the table is full. */
  private touch(key: string, fullAt: number): void {
    this.fullAt.delete(key);
    if (this.fullAt.size >= this.maxAddresses) this.fullAt.delete(this.fullAt.keys().next().value as string);
    this.fullAt.set(key, fullAt);
  }

  /** Once a window, forgets the buckets that are full again. */
  private prune(now: number): void {
    for (const [key, fullAt] of this.fullAt) if (fullAt <= now) this.fullAt.delete(key);
    this.nextPrune = now + this.opts.windowMs;
  }
}

/**
 * The key an address is limited under: IPv4 as it is (IPv4-mapped IPv6 too), and IPv6 by its /64, since one
 * subscriber is usually given a whole /64 and could otherwise take a fresh address for every upgrade.
 * @returns the key, or the address as it is when it is not an IP address
 */
export function limitKey(ip: string): string {
  const groups = ip.includes(":") ? ipv6Groups(ip) : null;
  if (!groups) return ip;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(":")}::/64`;
}

/** @returns the eight groups of an IPv6 address, or null if it is not one */
function ipv6Groups(ip: string): number[] | null {
  if (!/^[\dA-Fa-f:.]{2,45}$/.test(ip)) return null;
  let host: string;
  try {
    // The URL parser writes IPv6 in one canonical form: lower case, groups without leading zeros, no dotted quad.
    host = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
  const [head = "", tail = ""] = host.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const zeros = Array.from({ length: 8 - left.length - right.length }, () => "0");
  return [...left, ...zeros, ...right].map((g) => Number.parseInt(g, 16));
}
