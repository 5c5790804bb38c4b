/**
 * One clock for the deadlines of a peer's calls, instead of a timer per call.
 * Calls with the same timeout expire in the order they were made, so each
 * timeout length keeps a first-in, first-out queue, and a single timer is set
 * for the earliest head. An item's `deadline` is 0 once it has settled; it
 * stays queued until it reaches the head (most calls settle in order, so that
 * is soon) or until settled items are most of what is held, when every queue
 * is swept.
 */
import { unref } from "./timers.ts";

/** Something with a deadline: when it expires on the `performance.now()` clock, 0 once settled. */
export interface Timed {
  deadline: number;
}

interface Queue<T> {
  items: T[];
  head: number;
}

/** setTimeout's longest delay; a longer one fires at once. */
const MAX_DELAY = 2 ** 31 - 1;

/** An overdue timer is re-armed at most this often (ms, setTimeout's resolution), not on every add of a late tick. */
const HURRY_AGAIN = 1;

const waiting = (item: Timed) => item.deadline !== 0;

export class Deadlines<T extends Timed> {
  private readonly queues = new Map<number, Queue<T>>();
  /** Items added and not yet settled. */
  private live = 0;
  /** Items in the queues, settled ones included. */
  private count = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private armedFor = Number.POSITIVE_INFINITY;
  private readonly expire: (item: T) => void;

  /** @param expire - called for each item whose deadline has passed, after it is settled */
  constructor(expire: (item: T) => void) {
    this.expire = expire;
  }

  /** Items still held in the queues, settled ones included (they go in sweeps). */
  get held(): number {
    return this.count;
  }

  /** Starts the clock on an item: it expires `ms` from now unless it settles first. */
  add(item: T, ms: number): void {
    const now = performance.now();
    const deadline = now + ms;
    item.deadline = deadline;
    let queue = this.queues.get(ms);
    if (!queue) {
      queue = { items: [], head: 0 };
      this.queues.set(ms, queue);
    } else this.dropSettledHeads(queue);
    queue.items.push(item);
    this.live++;
    this.count++;
    if (this.count > 2 * this.live + 64) this.sweep();
    if (deadline < this.armedFor) this.arm(deadline, now);
    // Overdue (a late event loop, or a fake timer since removed): fire at once, never wait for this later deadline.
    else if (this.armedFor + HURRY_AGAIN < now) this.arm(now, now);
  }

  /** An item settled (answered, aborted or expired): its deadline no longer counts. */
  settle(item: T): void {
    if (item.deadline === 0) return;
    item.deadline = 0;
    this.live--;
  }

  /** Stops the clock; the items are forgotten. */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    this.queues.clear();
    this.live = 0;
    this.count = 0;
  }

  private dropSettledHeads(queue: Queue<T>): void {
    const { items } = queue;
    const from = queue.head;
    while (queue.head < items.length && (items[queue.head] as T).deadline === 0) queue.head++;
    this.count -= queue.head - from;
    if (queue.head > 1024 && queue.head * 2 > items.length) {
      queue.items = items.slice(queue.head);
      queue.head = 0;
    }
  }

  /** Drops every settled item: runs when they are most of what is held, so its cost is shared by the adds. */
  private sweep(): void {
    this.count = 0;
    for (const [ms, queue] of this.queues) {
      queue.items = queue.items.slice(queue.head).filter(waiting);
      queue.head = 0;
      if (queue.items.length === 0) this.queues.delete(ms);
      this.count += queue.items.length;
    }
  }

  private arm(at: number, now: number): void {
    clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.min(MAX_DELAY, Math.max(0, at - now)));
    unref(this.timer);
  }

  private fire(): void {
    // The timer firing means its time has come, even on a clock that says otherwise (fake timers that leave
    // performance.now alone, or a timer that fires a hair early).
    const now = Math.max(performance.now(), this.armedFor);
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const due: T[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const [ms, queue] of this.queues) {
      const { items } = queue;
      while (queue.head < items.length) {
        const item = items[queue.head] as T;
        if (item.deadline > now) break;
        queue.head++;
        this.count--;
        if (item.deadline !== 0) due.push(item);
      }
      if (queue.head === items.length) this.queues.delete(ms);
      else next = Math.min(next, (items[queue.head] as T).deadline);
    }
    // Several may be overdue at once (a busy event loop): the earliest goes first, whatever its queue.
    due.sort((a, b) => a.deadline - b.deadline);
    for (const item of due) {
      if (item.deadline === 0) continue; // Settled by an earlier expiry's side effects.
      this.settle(item);
      this.expire(item);
    }
    if (next < this.armedFor) this.arm(next, now);
  }
}
