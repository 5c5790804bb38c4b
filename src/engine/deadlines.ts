/**
 * One clock for the deadlines of a peer's calls, instead of a timer per call.
 * Calls with the same timeout expire in the order they were made, so each
 * timeout length keeps a first-in, first-out queue, and a single timer is set
 * for the earliest head. An item's `deadline` is 0 once it has settled; it
 * stays in its queue until it reaches the head (most calls settle in order,
 * so that is soon) or until settled items are most of the queue, when they
 * are swept out.
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

const waiting = (item: Timed) => item.deadline !== 0;

export class Deadlines<T extends Timed> {
  private readonly queues = new Map<number, Queue<T>>();
  /** Items added and not yet settled. */
  private live = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private armedFor = Number.POSITIVE_INFINITY;
  private readonly expire: (item: T) => void;

  /** @param expire - called for each item whose deadline has passed, after it is settled */
  constructor(expire: (item: T) => void) {
    this.expire = expire;
  }

  /** Starts the clock on an item: it expires `ms` from now unless it settles first. */
  add(item: T, ms: number): void {
    const deadline = performance.now() + ms;
    item.deadline = deadline;
    let queue = this.queues.get(ms);
    if (!queue) {
      queue = { items: [], head: 0 };
      this.queues.set(ms, queue);
    } else this.sweep(queue);
    queue.items.push(item);
    this.live++;
    if (deadline < this.armedFor) this.arm(deadline);
  }

  /** An item settled (answered, aborted or expired): its deadline no longer counts. */
  settle(item: T): void {
    if (item.deadline === 0) return;
    item.deadline = 0;
    this.live--;
  }

  /** Items still held in the queues, settled ones included (they go in sweeps). */
  get held(): number {
    let n = 0;
    for (const queue of this.queues.values()) n += queue.items.length - queue.head;
    return n;
  }

  /** Stops the clock; the items are forgotten. */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    this.queues.clear();
    this.live = 0;
  }

  /** Drops settled items from the head, and from everywhere once they are most of the queue. */
  private sweep(queue: Queue<T>): void {
    const { items } = queue;
    while (queue.head < items.length && (items[queue.head] as T).deadline === 0) queue.head++;
    const size = items.length - queue.head;
    if (size > 64 && size > 2 * this.live) {
      queue.items = items.slice(queue.head).filter(waiting);
      queue.head = 0;
    } else if (queue.head > 1024 && queue.head * 2 > items.length) {
      queue.items = items.slice(queue.head);
      queue.head = 0;
    }
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - performance.now()));
    unref(this.timer);
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [ms, queue] of this.queues) {
      while (queue.head < queue.items.length) {
        const item = queue.items[queue.head] as T;
        if (item.deadline > now) break;
        queue.head++;
        if (item.deadline === 0) continue;
        this.settle(item);
        this.expire(item);
      }
      if (queue.head === queue.items.length) this.queues.delete(ms);
      else next = Math.min(next, (queue.items[queue.head] as T).deadline);
    }
    if (next < Number.POSITIVE_INFINITY) this.arm(next);
  }
}
