/**
 * Upgrades per client address, in fixed windows. Expired entries are pruned
 * once a window, so the table holds at most the addresses seen in the last
 * two windows.
 */
export interface RateLimitOptions {
  /** Upgrades allowed per address per window. */
  max: number;
  /** The window, in milliseconds. */
  windowMs: number;
}

export class RateLimiter {
  private readonly counts = new Map<string, { n: number; until: number }>();
  private nextPrune = 0;
  private readonly opts: RateLimitOptions;

  constructor(opts: RateLimitOptions) {
    this.opts = opts;
  }

  /** Number of addresses tracked now. */
  get size(): number {
    return this.counts.size;
  }

  /** @returns whether `key` may upgrade now; counts the attempt */
  take(key: string, now = Date.now()): boolean {
    if (now >= this.nextPrune) this.prune(now);
    const entry = this.counts.get(key);
    if (!entry || entry.until <= now) {
      this.counts.set(key, { n: 1, until: now + this.opts.windowMs });
      return true;
    }
    entry.n++;
    return entry.n <= this.opts.max;
  }

  private prune(now: number): void {
    for (const [key, entry] of this.counts) if (entry.until <= now) this.counts.delete(key);
    this.nextPrune = now + this.opts.windowMs;
  }
}
