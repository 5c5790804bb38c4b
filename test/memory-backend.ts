/**
 * A cluster backend in one process, with no dependencies: the contract of src/server/cluster.ts kept in
 * maps, for tests of the cluster core on fake time (expiry reads Date.now(), a waiting read uses setTimeout).
 * It behaves as chatter/redis does where the core can tell: messages arrive in a microtask, a waiting read
 * wakes on an append, an outage fails every call and interrupts every listener once, a restart without
 * data makes a new epoch, and the log is trimmed to `maxLogEntries` (exactly; Redis trims about there).
 * test/cluster-backend.test.ts runs the same suite against both.
 */
import { type ClusterBackend, type ClusterListener, emptyStats, type LogEntry, type LogRead } from "../src/server/cluster.ts";

/** Options of {@link memoryHub}. */
export interface MemoryHubOptions {
  /** Entries the log keeps; older ones are dropped. Default 10 000. */
  maxLogEntries?: number;
}

interface Listening {
  channels: Set<string>;
  listener: ClusterListener;
  interrupted: () => void;
  /** Listening now: set when the store is up, cleared (with one `interrupted`) when it goes down. */
  armed: boolean;
  /** Resolves the `subscribe` that waits for the store to come up. */
  armedNow?: () => void;
}

interface Waiting {
  owner: object;
  wake: () => void;
  fail: (err: Error) => void;
}

/**
 * Creates one shared store; each `backend()` is an instance's view of it.
 * @returns `backend()`, the controls `restart` and `outage`, and `presence` to inspect or seed
 */
export function memoryHub(options: MemoryHubOptions = {}) {
  const maxLogEntries = options.maxLogEntries ?? 10_000;
  const listening = new Set<Listening>();
  const waiting = new Set<Waiting>();
  const presence = new Map<string, { value: Uint8Array; until: number }>();
  const kv = new Map<string, { value: Uint8Array; until: number }>();
  const origins = new Map<string, { last: number; until: number }>();
  let log = { epoch: "", seq: 0, entries: [] as LogEntry[], until: Number.POSITIVE_INFINITY };
  let epochs = 0;
  let down = false;

  const check = (closed: boolean) => {
    if (closed) throw new Error("memory hub: this backend is closed");
    if (down) throw new Error("memory hub: the store is down");
  };
  const epoch = () => {
    log.epoch ||= `epoch-${++epochs}`;
    if (log.until <= Date.now()) log.entries = []; // the stream expired; seq and epoch never do
    return log.epoch;
  };
  const readNow = (after: number | null, limit: number): LogRead => {
    const at = after === null ? -1 : log.entries.findIndex((e) => e.seq > after);
    return { epoch: epoch(), last: log.seq, entries: at < 0 ? [] : log.entries.slice(at, at + limit) };
  };
  const fresh = <T extends { until: number }>(value: T | undefined) => (value && value.until > Date.now() ? value : undefined);

  /** What a dropped connection does: listeners hear of it once, waiting reads fail. */
  const drop = () => {
    for (const l of listening) {
      if (!l.armed) continue;
      l.armed = false;
      l.interrupted();
    }
    for (const w of waiting) w.fail(new Error("memory hub: the connection dropped"));
  };
  const arm = () => {
    for (const l of listening) {
      l.armed = true;
      l.armedNow?.();
    }
  };

  function append(origin: string, counter: number, entry: Uint8Array, ttlMs: number) {
    const at = epoch();
    const last = fresh(origins.get(origin))?.last;
    if (last !== undefined && counter <= last) return null;
    if (last !== undefined && counter > last + 1) throw new Error(`OUT_OF_ORDER: counter ${counter} follows ${last} for ${origin}`);
    const seq = ++log.seq;
    log.entries.push({ seq, entry: new Uint8Array(entry) });
    if (log.entries.length > maxLogEntries) log.entries.splice(0, log.entries.length - maxLogEntries);
    log.until = Date.now() + ttlMs;
    origins.set(origin, { last: counter, until: Date.now() + ttlMs });
    for (const w of waiting) w.wake();
    return { epoch: at, seq };
  }

  function backend(timing: { heartbeatMs?: number; presenceTtlMs?: number } = {}): ClusterBackend {
    const owner = {};
    let closed = false;
    let mine: Listening | undefined;
    return {
      stats: emptyStats(),
      ...timing,
      async publish(channel, message) {
        check(closed);
        const to = [...listening].filter((l) => l.armed && l.channels.has(channel));
        const copy = new Uint8Array(message);
        queueMicrotask(() => {
          for (const l of to) l.listener(channel, copy);
        });
        return to.length;
      },
      // As chatter/redis does, a subscribe during an outage resolves once the store is back.
      subscribe(channels, listener, interrupted) {
        if (closed) return Promise.reject(new Error("memory hub: this backend is closed"));
        mine = { channels: new Set(channels), listener, interrupted, armed: !down };
        listening.add(mine);
        const l = mine;
        return l.armed ? Promise.resolve() : new Promise((resolve) => Object.assign(l, { armedNow: resolve }));
      },
      async append(origin, counter, entry, ttlMs) {
        check(closed);
        return append(origin, counter, entry, ttlMs);
      },
      async read(after, limit, waitMs) {
        check(closed);
        const now = readNow(after, limit);
        if (after === null || waitMs <= 0 || now.entries.length > 0) return now;
        return new Promise((resolve, reject) => {
          const done = () => {
            clearTimeout(timer);
            waiting.delete(w);
          };
          const w: Waiting = {
            owner,
            wake: () => {
              if (log.seq <= after) return;
              done();
              resolve(readNow(after, limit));
            },
            fail: (err) => {
              done();
              reject(err);
            },
          };
          const timer = setTimeout(() => {
            done();
            resolve(readNow(after, limit));
          }, waitMs);
          waiting.add(w);
        });
      },
      async put(key, value, ttlMs) {
        check(closed);
        kv.set(key, { value: new Uint8Array(value), until: Date.now() + ttlMs });
      },
      async get(key) {
        check(closed);
        return fresh(kv.get(key))?.value;
      },
      async touch(keys, ttlMs) {
        check(closed);
        for (const key of keys) {
          const record = fresh(kv.get(key));
          if (record) record.until = Date.now() + ttlMs;
        }
      },
      async delete(keys) {
        check(closed);
        for (const key of keys) kv.delete(key);
      },
      async putPresence(id, value, ttlMs) {
        check(closed);
        presence.set(id, { value: new Uint8Array(value), until: Date.now() + ttlMs });
      },
      async readPresence() {
        check(closed);
        return new Map([...presence].map(([id, p]) => [id, fresh(p)?.value]));
      },
      async forgetPresence(ids) {
        check(closed);
        for (const id of ids) presence.delete(id);
      },
      async close() {
        closed = true;
        if (mine) listening.delete(mine);
        for (const w of waiting) if (w.owner === owner) w.fail(new Error("memory hub: closed while a read waited"));
      },
    };
  }

  return {
    backend,
    presence,
    /**
     * Restarts the store: connections drop (each listener is interrupted once, waiting reads fail) and come
     * back at once. Without `keepData` the log (a new epoch), the key-value store and presence are lost.
     */
    restart({ keepData }: { keepData: boolean }) {
      drop();
      if (!keepData) {
        log = { epoch: "", seq: 0, entries: [], until: Number.POSITIVE_INFINITY };
        for (const store of [kv, origins, presence]) store.clear();
      }
      if (!down) arm();
    },
    /** Takes the store down (every call fails, listeners are interrupted once) or brings it back. */
    outage(isDown: boolean) {
      if (isDown && !down) drop();
      down = isDown;
      if (!down) arm();
    },
  };
}
