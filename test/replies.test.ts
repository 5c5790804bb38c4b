import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ReplyCache, SharedReplyBudget } from "../src/engine/replies.ts";

/**
 * The answer cache against a plain model: a list of [cache, id, bytes] in the order answers were kept.
 * Each cache drops its own oldest past its limits and what its caller confirmed; the shared budget drops
 * the oldest anywhere. Lookups by id must agree with the model whatever came before them.
 */
type Op =
  | { kind: "set"; cache: number; gap: number; bytes: number }
  | { kind: "forgetBelow"; cache: number; back: number }
  | { kind: "get"; cache: number; back: number }
  | { kind: "forget"; cache: number; back: number }
  | { kind: "clear"; cache: number }
  | { kind: "late"; cache: number; bytes: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant("set" as const), cache: fc.nat(1), gap: fc.nat(2), bytes: fc.integer({ min: 1, max: 40 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("forgetBelow" as const), cache: fc.nat(1), back: fc.nat(6) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("get" as const), cache: fc.nat(1), back: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("forget" as const), cache: fc.nat(1), back: fc.nat(8) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("clear" as const), cache: fc.nat(1) }) },
  // An answer out of id order: a call skipped by a gap, whose handler finished late.
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("late" as const), cache: fc.nat(1), bytes: fc.integer({ min: 1, max: 40 }) }) },
);

describe("answers kept for repeats", () => {
  test("lookups, drops and the shared budget agree with a plain model", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const shared = new SharedReplyBudget(200);
        const caches = [new ReplyCache({ maxEntries: 8, maxBytes: 150, shared }), new ReplyCache({ maxEntries: 8, maxBytes: 150, shared })];
        let model: { cache: number; id: number; bytes: number }[] = [];
        const nextId = [1, 1];
        const skipped: number[][] = [[], []];
        const mine = (c: number) => model.filter((e) => e.cache === c);
        const used = () => model.reduce((n, e) => n + e.bytes, 0);
        for (const o of ops) {
          const cache = caches[o.cache] as ReplyCache;
          if (o.kind === "set" || o.kind === "late") {
            let id: number;
            if (o.kind === "late") {
              const late = (skipped[o.cache] as number[]).shift();
              if (late === undefined) continue;
              id = late;
            } else {
              id = (nextId[o.cache] as number) + o.gap;
              for (let s = nextId[o.cache] as number; s < id; s++) skipped[o.cache]?.push(s);
              nextId[o.cache] = id + 1;
            }
            cache.set(id, new Uint8Array(o.bytes).fill(id & 0xff));
            model.push({ cache: o.cache, id, bytes: o.bytes });
            // The cache's own limits drop its oldest first, then the shared one drops the oldest anywhere.
            for (;;) {
              const own = mine(o.cache);
              if (own.length <= 8 && own.reduce((n, e) => n + e.bytes, 0) <= 150) break;
              model.splice(model.indexOf(own[0] as (typeof model)[0]), 1);
            }
            while (used() > 200) model.shift();
          } else if (o.kind === "forgetBelow") {
            // Confirmed: stops at the first answer still needed, as the cache does.
            const below = (nextId[o.cache] as number) - o.back;
            cache.forgetBelow(below);
            for (const e of mine(o.cache)) {
              if (e.id >= below) break;
              model.splice(model.indexOf(e), 1);
            }
          } else if (o.kind === "get") {
            const id = (nextId[o.cache] as number) - 1 - o.back;
            const kept = mine(o.cache).find((e) => e.id === id);
            const got = cache.get(id);
            expect(got?.byteLength).toBe(kept?.bytes);
            if (got) expect(got[0]).toBe(id & 0xff);
          } else if (o.kind === "forget") {
            const id = (nextId[o.cache] as number) - 1 - o.back;
            cache.forget(id);
            model = model.filter((e) => !(e.cache === o.cache && e.id === id));
          } else {
            cache.clear();
            model = model.filter((e) => e.cache !== o.cache);
          }
          for (const [c, rc] of caches.entries()) {
            expect(rc.size).toBe(mine(c).length);
            expect(rc.entries().map(([id]) => id)).toEqual(mine(c).map((e) => e.id));
          }
          expect(shared.used).toBe(used());
        }
      }),
      { numRuns: 1000 },
    );
  });

  test("keep takes a frame as it is; set keeps a right-sized copy of a view", () => {
    const cache = new ReplyCache();
    const own = new Uint8Array([1, 2, 3]);
    cache.keep(1, own);
    expect(cache.get(1)).toBe(own);
    const view = new Uint8Array(64).subarray(8, 11);
    cache.set(2, view);
    expect(cache.get(2)?.buffer.byteLength).toBe(3);
  });

  test("a cache that drops its own oldest for thousands of answers keeps the shared budget right", () => {
    // Its queue is compacted while it keeps answers: the shared budget must still name the right ones.
    const shared = new SharedReplyBudget(1000);
    const a = new ReplyCache({ maxEntries: 8, shared });
    const b = new ReplyCache({ shared });
    // With 8 kept, a's queue is compacted every 1,025 drops; the one at 4,108 falls among its last 8 answers.
    for (let id = 1; id <= 4110; id++) a.keep(id, new Uint8Array(10));
    expect(a.size).toBe(8);
    expect(shared.used).toBe(80);
    // Over the shared budget now: the oldest anywhere go first, which are a's.
    for (let id = 1; id <= 98; id++) b.keep(id, new Uint8Array(10));
    expect(shared.used).toBe(1000);
    expect(a.entries().map(([id]) => id)).toEqual([4109, 4110]);
    expect(b.size).toBe(98);
    // One answer bigger than a cache's own limit is not kept, and not counted.
    const c = new ReplyCache({ maxBytes: 50, shared });
    c.keep(1, new Uint8Array(60));
    expect(c.size).toBe(0);
    expect(shared.used).toBe(1000);
  });

  test("thousands of answers kept and confirmed one at a time leave the queue small", () => {
    const cache = new ReplyCache();
    for (let id = 1; id <= 50_000; id++) {
      cache.forgetBelow(id);
      cache.set(id, new Uint8Array(4));
    }
    expect(cache.size).toBe(1);
    expect(cache.get(50_000)?.byteLength).toBe(4);
    expect(cache.get(49_999)).toBeUndefined();
  });
});
