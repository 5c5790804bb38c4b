/**
 * Round-trip times from several client processes, merged: each keeps counts
 * in buckets 1% wide (log scale) from 10 µs to 100 s, small enough to print
 * as one line and exact enough for a p99.
 */
const MIN_US = 10;
const STEP = Math.log(1.01);
export const BUCKETS = Math.ceil(Math.log(1e8 / MIN_US) / STEP) + 1;

/** @returns the bucket of a round trip of `us` microseconds */
export function bucketOf(us: number): number {
  if (us <= MIN_US) return 0;
  return Math.min(BUCKETS - 1, Math.floor(Math.log(us / MIN_US) / STEP) + 1);
}

/** @returns the q-quantile (nearest rank), in µs, of merged bucket counts: each bucket's upper bound */
export function quantile(counts: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] as number;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] as number;
    if (seen >= rank) return MIN_US * Math.exp(i * STEP);
  }
  return Number.NaN;
}

/** @returns bucket counts from sparse `[bucket, count]` pairs, as client processes print them, added up */
export function merge(pairs: number[][]): Float64Array {
  const counts = new Float64Array(BUCKETS);
  for (const [bucket = 0, count = 0] of pairs) counts[bucket] = (counts[bucket] as number) + count;
  return counts;
}
