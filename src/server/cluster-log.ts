/**
 * Broadcasts in one order for the whole cluster, on the backend's log
 * (cluster.ts). Every instance, the sender too, delivers a broadcast only
 * when it reads it back, so every subscriber sees the log's order whichever
 * instances sent them, and the log's dense sequence numbers are the EVENT
 * numbers clients resume by, the same on every instance.
 *
 * Appends survive an outage: a broadcast is queued (bounded) and appended
 * once the store is back, numbered per instance so a retry after a lost
 * reply is not appended twice. Reading survives it too: the reader goes on
 * from the last entry it had. What cannot be recovered is told, never
 * skipped: a new epoch (the store lost the log) or entries trimmed before
 * this instance read them make the server reset the sessions that may have
 * needed them.
 */
import { unref } from "../engine/timers.ts";
import { ChatterError } from "../errors.ts";
import { decode, encode } from "../wire/codec.ts";
import type { ClusterBackend, ClusterBroadcast, ClusterStats, LogPosition } from "./cluster.ts";

/** What the log needs of the local server. */
export interface LogHost {
  readonly instanceId: string;
  /** Delivers a broadcast read from the log, numbered `seq`, to the local subscribers. */
  deliver(broadcast: ClusterBroadcast, seq: number): void;
  /**
   * Broadcasts were lost before this instance read them.
   * @param all - the whole log (a new epoch: numbers start again), rather than some entries
   */
  lost(why: string, all: boolean): void;
  report(error: unknown): void;
  log: ((msg: string) => void) | undefined;
}

/** Broadcasts waiting for the store at most, per instance, and their bytes: past either, a new one is lost (counted, reported). */
export const MAX_QUEUED = 10_000;
export const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** Appends sent and not yet answered at most: the rest wait in the queue, in order. */
const IN_FLIGHT = 256;
/** Entries per read, and how long a read waits for one: also how soon a new epoch is noticed when nothing else is appended. */
const READ_BATCH = 1000;
const READ_WAIT_MS = 1000;
/** Backoff after a failed read or append, doubling up to the max. */
const RETRY_MS = 50;
const RETRY_MAX_MS = 2000;

interface Queued {
  counter: number;
  bytes: Uint8Array;
  name: string;
  sent: boolean;
  done: boolean;
  /** Settle the broadcast's promise: appended, or lost. */
  resolve: () => void;
  reject: (err: ChatterError) => void;
}

/** A broadcast read back for a replay, with its number. */
export interface Logged {
  seq: number;
  broadcast: ClusterBroadcast;
}

export class ClusterLog {
  /** Where this instance has read to; null until the first read. */
  private pos: LogPosition | null = null;
  private counter = 0;
  private readonly queue: Queued[] = [];
  private queuedBytes = 0;
  private inFlight = 0;
  private appendRetry: ReturnType<typeof setTimeout> | undefined;
  private appendDelay = RETRY_MS;
  private closed = false;
  private readonly started: Promise<void>;
  private ready: () => void = () => {};
  /** Whether the store was last seen unreachable (reported once per outage). */
  private down = false;

  constructor(
    private readonly backend: ClusterBackend,
    private readonly host: LogHost,
    private readonly stats: ClusterStats,
    /** How long the log keeps entries for late readers and replays. */
    private readonly ttlMs: number,
  ) {
    this.started = new Promise((resolve) => {
      this.ready = resolve;
    });
    void this.read();
  }

  /** Resolves once this instance reads the log: broadcasts appended from then on reach it. */
  get whenReading(): Promise<void> {
    return this.started;
  }

  /** The newest entry delivered here, 0 before the first. */
  get seq(): number {
    return this.pos?.seq ?? 0;
  }

  get epoch(): string | undefined {
    return this.pos?.epoch;
  }

  /**
   * Queues a broadcast for the log; it is delivered here too when read back.
   * @returns a promise that resolves once the log has it (from then on it reaches every subscriber, whatever
   *   happens to this instance), or rejects with `LIMIT` past the queue's bounds or `DISCONNECTED` when the
   *   cluster closes first: the broadcast is then lost, and counted
   */
  append(b: ClusterBroadcast): Promise<void> {
    if (this.closed) return Promise.reject(this.lose("DISCONNECTED", b.name, "the cluster is closed"));
    let bytes: Uint8Array;
    try {
      bytes = encode(b);
    } catch (err) {
      return Promise.reject(new ChatterError("VALIDATION", `broadcast of "${b.name}" cannot be encoded: ${(err as Error).message}`));
    }
    if (this.queue.length >= MAX_QUEUED || this.queuedBytes + bytes.byteLength > MAX_QUEUED_BYTES) {
      const why = `${this.queue.length} broadcasts (${this.queuedBytes} bytes) already wait for the backend`;
      return Promise.reject(this.lose("LIMIT", b.name, why));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ counter: ++this.counter, bytes, name: b.name, sent: false, done: false, resolve, reject });
      this.queuedBytes += bytes.byteLength;
      this.stats.queued = this.queue.length;
      this.pump();
    });
  }

  /**
   * The broadcasts after `after`, up to what this instance has delivered, for a session resuming here
   * whose old instance is gone.
   * @returns them oldest first, or null if some are no longer in the log (or the epoch changed)
   */
  async since(after: number, epoch: string): Promise<Logged[] | null> {
    const out: Logged[] = [];
    let from = after;
    while (this.pos && this.pos.epoch === epoch && from < this.pos.seq) {
      const r = await this.backend.read(from, READ_BATCH, 0);
      if (r.epoch !== epoch) return null;
      if (r.entries.length === 0) break;
      for (const { seq, entry } of r.entries) {
        if (seq !== from + 1) return null; // Trimmed: a gap.
        out.push({ seq, broadcast: decode(entry) as ClusterBroadcast });
        from = seq;
      }
    }
    return this.pos?.epoch === epoch ? out : null;
  }

  /** Stops reading and appending; broadcasts still queued are lost (counted). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.appendRetry);
    const left = this.queue.filter((q) => !q.done);
    for (const q of left) q.reject(this.lose("DISCONNECTED", q.name, "the cluster closed before the backend had it"));
    this.queue.length = 0;
    this.stats.queued = 0;
  }

  /** Counts a lost broadcast; @returns the error its promise rejects with (reported unless the caller takes it) */
  private lose(code: "LIMIT" | "DISCONNECTED", name: string, why: string): ChatterError {
    this.stats.lost++;
    return new ChatterError(code, `cluster: broadcast of "${name}" lost: ${why}; ${this.stats.lost} lost so far`);
  }

  /** Sends queued appends in order, a bounded number at a time, once this instance reads the log. */
  private pump(): void {
    if (this.closed || !this.pos || this.appendRetry) return;
    for (const q of this.queue) {
      if (this.inFlight >= IN_FLIGHT) return;
      if (q.sent) continue;
      q.sent = true;
      this.inFlight++;
      this.backend.append(this.host.instanceId, q.counter, q.bytes, this.ttlMs).then(
        () => this.appended(q),
        (err: unknown) => this.failed(q, err),
      );
    }
  }

  private appended(q: Queued): void {
    this.inFlight--;
    if (q.done) return;
    q.done = true;
    q.resolve();
    this.stats.published++;
    this.appendDelay = RETRY_MS;
    this.recovered();
    // Answers come back in order on one connection; drop the confirmed head.
    while (this.queue.length && (this.queue[0] as Queued).done) this.queuedBytes -= (this.queue.shift() as Queued).bytes.byteLength;
    this.stats.queued = this.queue.length;
    this.pump();
  }

  /** An append failed (an outage, or out of order behind one that did): send everything unconfirmed again, from the first. */
  private failed(q: Queued, err: unknown): void {
    this.inFlight--;
    if (this.closed || q.done) return;
    this.outage(err);
    for (const other of this.queue) if (!other.done) other.sent = false;
    if (this.appendRetry) return;
    this.appendRetry = setTimeout(() => {
      this.appendRetry = undefined;
      this.pump();
    }, this.appendDelay);
    unref(this.appendRetry);
    this.appendDelay = Math.min(this.appendDelay * 2, RETRY_MAX_MS);
  }

  private outage(err: unknown): void {
    if (this.down) return;
    this.down = true;
    const why = err instanceof Error ? err.message : String(err);
    this.host.report(new ChatterError("DISCONNECTED", `cluster: backend unreachable (${why}); broadcasts are queued until it is back`));
  }

  private recovered(): void {
    if (!this.down) return;
    this.down = false;
    this.host.log?.("cluster: backend reachable again");
  }

  /** The reading loop: from where this instance is, in order, for as long as the cluster is open. */
  private async read(): Promise<void> {
    let delay = RETRY_MS;
    while (!this.closed) {
      try {
        const pos = this.pos;
        const r = await this.backend.read(pos ? pos.seq : null, READ_BATCH, READ_WAIT_MS);
        if (this.closed) return;
        delay = RETRY_MS;
        this.recovered();
        if (!pos) {
          this.pos = { epoch: r.epoch, seq: r.last };
          this.ready();
          this.pump();
          continue;
        }
        if (r.epoch !== pos.epoch) {
          // The store lost the log: numbers start again, and anything not read yet is gone.
          this.host.lost(`the cluster backend lost its broadcast log (epoch ${pos.epoch} → ${r.epoch})`, true);
          this.pos = { epoch: r.epoch, seq: 0 };
          continue;
        }
        for (const { seq, entry } of r.entries) {
          if (seq <= pos.seq) continue;
          if (seq > pos.seq + 1) {
            this.stats.lost += seq - pos.seq - 1;
            this.host.lost(
              `broadcasts ${pos.seq + 1} to ${seq - 1} were trimmed from the cluster log before this instance read them`,
              false,
            );
          }
          pos.seq = seq;
          this.stats.received++;
          let b: ClusterBroadcast;
          try {
            b = decode(entry) as ClusterBroadcast;
          } catch (err) {
            this.host.report(new ChatterError("PROTOCOL", `cluster: undecodable log entry ${seq}: ${(err as Error).message}`));
            continue;
          }
          this.host.deliver(b, seq);
        }
      } catch (err) {
        if (this.closed) return;
        this.outage(err);
        await new Promise<void>((resolve) => unref(setTimeout(resolve, delay)));
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }
}
