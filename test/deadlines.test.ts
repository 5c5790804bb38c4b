/** The one clock behind every call timeout (src/engine/deadlines.ts), on fake time. */
import { expect, jest, test } from "bun:test";
import { Deadlines, type Timed } from "../src/engine/deadlines.ts";
import { waitFor, withFakeTimers } from "./helpers.ts";

interface Item extends Timed {
  name: string;
}
const item = (name: string): Item => ({ name, deadline: 0 });

function clock() {
  const expired: string[] = [];
  const deadlines = new Deadlines<Item>((i) => expired.push(i.name));
  return { deadlines, expired };
}

test("items expire at their own deadline, in deadline order, whatever their timeout lengths", async () => {
  await withFakeTimers(async () => {
    const { deadlines, expired } = clock();
    deadlines.add(item("slow"), 300);
    deadlines.add(item("fast"), 100);
    jest.advanceTimersByTime(50);
    deadlines.add(item("fast2"), 100); // due at 150
    deadlines.add(item("mid"), 200); // due at 250
    jest.advanceTimersByTime(49);
    expect(expired).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(expired).toEqual(["fast"]);
    jest.advanceTimersByTime(50);
    expect(expired).toEqual(["fast", "fast2"]);
    jest.advanceTimersByTime(100);
    expect(expired).toEqual(["fast", "fast2", "mid"]);
    jest.advanceTimersByTime(49);
    expect(expired).toEqual(["fast", "fast2", "mid"]);
    jest.advanceTimersByTime(1);
    expect(expired).toEqual(["fast", "fast2", "mid", "slow"]);
    expect(deadlines.held).toBe(0);
  });
});

test("a settled item never expires, and the clock moves on to the next one", async () => {
  await withFakeTimers(async () => {
    const { deadlines, expired } = clock();
    const first = item("first");
    deadlines.add(first, 100);
    deadlines.add(item("second"), 100);
    jest.advanceTimersByTime(10);
    deadlines.add(item("third"), 100);
    deadlines.settle(first);
    expect(first.deadline).toBe(0);
    jest.advanceTimersByTime(90);
    expect(expired).toEqual(["second"]);
    jest.advanceTimersByTime(10);
    expect(expired).toEqual(["second", "third"]);
  });
});

test("settled items behind one that waits are swept, so the queue stays bounded", async () => {
  await withFakeTimers(async () => {
    const { deadlines, expired } = clock();
    deadlines.add(item("stuck"), 60_000);
    for (let i = 0; i < 10_000; i++) {
      const quick = item(`q${i}`);
      deadlines.add(quick, 60_000);
      deadlines.settle(quick);
    }
    // One item waits; the 10,000 settled ones may not all stay behind it.
    expect(deadlines.held).toBeLessThanOrEqual(66);
    jest.advanceTimersByTime(60_000);
    expect(expired).toEqual(["stuck"]);
  });
});

test("clear stops the clock", async () => {
  await withFakeTimers(async () => {
    const { deadlines, expired } = clock();
    deadlines.add(item("a"), 100);
    deadlines.clear();
    jest.advanceTimersByTime(1000);
    expect(expired).toEqual([]);
    expect(deadlines.held).toBe(0);
  });
});

test("settled items with many different timeout lengths are swept too", () => {
  const { deadlines } = clock();
  deadlines.add(item("stuck"), 60_000);
  for (let i = 0; i < 10_000; i++) {
    const quick = item(`q${i}`);
    deadlines.add(quick, 1000 + i); // a queue each
    deadlines.settle(quick);
  }
  expect(deadlines.held).toBeLessThanOrEqual(2 + 64 + 1);
  deadlines.clear();
});

test("after fake timers are gone, the clock runs on real time again", async () => {
  const { deadlines, expired } = clock();
  await withFakeTimers(async () => {
    // Fake time starts at 0, so this timer is set for a moment real time has long passed.
    const early = item("fake");
    deadlines.add(early, 1);
    deadlines.settle(early);
  });
  // The timer armed under fake time will never fire now; a new deadline must not wait for it.
  deadlines.add(item("real"), 20);
  await waitFor(() => expired.length > 0, 1000, "the real deadline to pass");
  expect(expired).toEqual(["real"]);
});

test("items overdue together expire earliest first, whatever their timeout lengths", async () => {
  const { deadlines, expired } = clock();
  deadlines.add(item("later"), 40); // its queue is made first
  deadlines.add(item("sooner"), 20);
  const until = performance.now() + 60;
  while (performance.now() < until); // the event loop is busy past both deadlines
  await waitFor(() => expired.length === 2, 1000, "both to expire");
  expect(expired).toEqual(["sooner", "later"]);
});

test("a later deadline does not push back a timer the late event loop left overdue", async () => {
  const heldAtFirstExpiry: number[] = [];
  const { promise: firstExpiry, resolve } = Promise.withResolvers<void>();
  const deadlines: Deadlines<Item> = new Deadlines<Item>(() => {
    heldAtFirstExpiry.push(deadlines.held);
    resolve();
  });
  deadlines.add(item("overdue"), 20);
  const until = performance.now() + 60;
  while (performance.now() < until); // the event loop is busy past the first deadline
  deadlines.add(item("later"), 2000);
  await firstExpiry;
  // Ordering, not duration: the first expired on its own, while the later one was still held.
  expect(heldAtFirstExpiry).toEqual([1]);
  deadlines.clear();
});

test("a timeout beyond setTimeout's range waits instead of spinning", async () => {
  await withFakeTimers(async () => {
    const { deadlines, expired } = clock();
    const fakeSetTimeout = globalThis.setTimeout;
    let timers = 0;
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      timers++;
      return fakeSetTimeout(fn, ms);
    }) as typeof setTimeout;
    try {
      deadlines.add(item("far"), 2 ** 40);
      // Fake time overflows as real time does: a delay past setTimeout's range fires at once, and again.
      jest.advanceTimersByTime(60_000);
    } finally {
      globalThis.setTimeout = fakeSetTimeout;
    }
    expect(expired).toEqual([]);
    expect(timers).toBe(1);
    deadlines.clear();
  });
});
