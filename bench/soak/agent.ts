/**
 * One soak client: a Chatter client that makes a messy call every 20-100 ms
 * (good calls, bad input, throwing handlers, aborts, tiny timeouts, calls back,
 * broadcasts, topic churn), checks that each settles as its kind expects, and
 * that the broadcasts it gets come in order, each once.
 */
import { type ChatterClient, ChatterError, createClient } from "../../src/index.ts";
import { BLOB, BLOB_BYTES, CALL_ME, DOUBLE, ECHO, FAIL, SHOUT, SLOW, SLOW_MS, STRICT_LOOSE, TICK, TOPIC, TOPICS } from "./procs.ts";

/** What one client process saw, summed over its clients. */
export interface Tally {
  /** kind -> outcome ("ok" or an error code) -> calls. */
  outcomes: Record<string, Record<string, number>>;
  /** Calls that failed with DISCONNECTED because their session was reset: accepted, counted apart. */
  resetDisconnects: number;
  unexpected: number;
  samples: string[];
  resets: number;
  ticks: number;
  /** Broadcasts that came in with a sequence number not above the last one (a duplicate or out of order). */
  orderViolations: number;
  /** Calls still unsettled when their client left. */
  hung: number;
  /** Turns skipped because the client already had MAX_IN_FLIGHT calls waiting: the machine could not keep up. */
  skipped: number;
  joined: number;
  left: number;
}

export function newTally(): Tally {
  return {
    outcomes: {},
    resetDisconnects: 0,
    unexpected: 0,
    samples: [],
    resets: 0,
    ticks: 0,
    orderViolations: 0,
    hung: 0,
    skipped: 0,
    joined: 0,
    left: 0,
  };
}

/** Adds `n` calls of `kind` that settled with `outcome`. */
export function addOutcome(tally: Tally, kind: string, outcome: string, n: number): void {
  const outcomes = tally.outcomes[kind] ?? {};
  outcomes[outcome] = (outcomes[outcome] ?? 0) + n;
  tally.outcomes[kind] = outcomes;
}

interface Kind {
  name: string;
  weight: number;
  /** "ok", or the error code the call must fail with. */
  expect: string;
  run(client: ChatterClient, n: number): Promise<unknown>;
  /** For "ok" kinds: whether the result is the right one. */
  check?(result: unknown, n: number): boolean;
}

/**
 * Calls one client may have waiting; at that many it skips its turn. Without
 * a bound, a machine that cannot keep up queues calls until they time out.
 */
const MAX_IN_FLIGHT = 8;

const between = (min: number, max: number) => min + Math.random() * (max - min);

const randomTopic = () => TOPICS[Math.floor(Math.random() * TOPICS.length)] as string;

/** An 8 KB payload whose bytes say which call it belongs to. */
function blob(n: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(BLOB_BYTES).fill(n % 251);
}

function isBlob(result: unknown, n: number): boolean {
  if (!(result instanceof Uint8Array) || result.byteLength !== BLOB_BYTES) return false;
  return result[0] === n % 251 && result[BLOB_BYTES >> 1] === n % 251 && result[BLOB_BYTES - 1] === n % 251;
}

const KINDS: Kind[] = [
  {
    name: "small",
    weight: 30,
    expect: "ok",
    run: (c, n) => c.call(ECHO, { n, text: "soak" }),
    check: (r, n) => (r as { n: number }).n === n + 1,
  },
  { name: "blob", weight: 10, expect: "ok", run: (c, n) => c.call(BLOB, blob(n)), check: isBlob },
  { name: "invalid", weight: 8, expect: "VALIDATION", run: (c, n) => c.call(STRICT_LOOSE, { n: `not a number ${n}` }) },
  { name: "throws", weight: 8, expect: "HANDLER_ERROR", run: (c, n) => c.call(FAIL, n) },
  {
    name: "aborted",
    weight: 8,
    expect: "ABORTED",
    run: (c) => {
      const abort = new AbortController();
      setTimeout(() => abort.abort(), between(2, 20));
      return c.call(SLOW, SLOW_MS, { signal: abort.signal });
    },
  },
  { name: "timeout", weight: 8, expect: "TIMEOUT", run: (c) => c.call(SLOW, SLOW_MS, { timeout: between(5, 30) }) },
  { name: "callback", weight: 10, expect: "ok", run: (c, n) => c.call(CALL_ME, n), check: (r, n) => r === 2 * n + 1 },
  { name: "shout", weight: 1, expect: "ok", run: (c) => c.call(SHOUT, randomTopic()), check: (r) => typeof r === "number" && r > 0 },
  {
    name: "topic",
    weight: 8,
    expect: "ok",
    run: (c) => {
      const on = Math.random() < 0.5;
      return c.call(TOPIC, { topic: randomTopic(), on }).then((subscribed) => subscribed === on);
    },
    check: (r) => r === true,
  },
];
/** Each kind of call, and the outcome it must settle with. */
export const EXPECTED: Record<string, string> = Object.fromEntries(KINDS.map((k) => [k.name, k.expect]));
const TOTAL_WEIGHT = KINDS.reduce((sum, k) => sum + k.weight, 0);

function pickKind(): Kind {
  let roll = Math.random() * TOTAL_WEIGHT;
  for (const kind of KINDS) {
    roll -= kind.weight;
    if (roll < 0) return kind;
  }
  return KINDS[0] as Kind;
}

export class Agent {
  readonly client: ChatterClient;
  private resets = 0;
  private lastSeq = 0;
  private n = 0;
  private running = true;
  private paused = false;
  private readonly pending = new Set<Promise<void>>();
  private readonly loop: Promise<void>;
  private readonly tally: Tally;

  constructor(url: string, clientId: string, tally: Tally) {
    this.tally = tally;
    this.client = createClient({ url, clientId, reconnect: { minDelay: 20, maxDelay: 200 } });
    this.client.onReset(() => {
      this.resets++;
      tally.resets++;
    });
    this.client.on(DOUBLE, (n) => n * 2);
    this.client.on(TICK, ({ seq }) => {
      tally.ticks++;
      if (seq <= this.lastSeq) tally.orderViolations++;
      this.lastSeq = seq;
    });
    tally.joined++;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      await Bun.sleep(between(20, 100));
      if (!this.running) break;
      if (this.paused) continue;
      if (this.pending.size < MAX_IN_FLIGHT) this.fire(pickKind());
      else this.tally.skipped++;
    }
  }

  private fire(kind: Kind): void {
    const n = ++this.n;
    const resetsBefore = this.resets;
    const settled = kind.run(this.client, n).then(
      (result) => {
        const right = kind.check?.(result, n) ?? true;
        this.count(kind, right ? "ok" : "wrong result", right && kind.expect === "ok", () => `result ${String(result).slice(0, 80)}`);
      },
      (err) => {
        const code = err instanceof ChatterError ? err.code : "not a ChatterError";
        // A reset fails the calls in flight with DISCONNECTED (they may or may not have run): accepted, counted apart.
        const afterReset = code === "DISCONNECTED" && this.resets > resetsBefore;
        if (afterReset) this.tally.resetDisconnects++;
        this.count(kind, code, code === kind.expect || afterReset, () => String(err));
      },
    );
    const tracked = settled.finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  private count(kind: Kind, outcome: string, expected: boolean, detail: () => string): void {
    addOutcome(this.tally, kind.name, outcome, 1);
    if (expected) return;
    this.tally.unexpected++;
    if (this.tally.samples.length < 10)
      this.tally.samples.push(`${kind.name}: expected ${kind.expect}, got ${outcome} (${detail().slice(0, 160)})`);
  }

  /** Waits up to `ms` for every call in flight to settle. */
  private async drain(ms: number): Promise<void> {
    const { promise: givenUp, resolve } = Promise.withResolvers();
    const timer = setTimeout(resolve, ms);
    await Promise.race([Promise.all(this.pending), givenUp]);
    clearTimeout(timer);
  }

  /** Makes no calls until `resume`; resolves once those in flight have settled (or `ms` passed), for a quiet heap reading. */
  pause(ms: number): Promise<void> {
    this.paused = true;
    return this.drain(ms);
  }

  resume(): void {
    this.paused = false;
  }

  /** Stops making calls, waits up to `ms` for those in flight (counting any left as hung), then closes the client. */
  async leave(ms: number): Promise<void> {
    this.running = false;
    await this.loop;
    await this.drain(ms);
    this.tally.hung += this.pending.size;
    this.tally.left++;
    this.client.close();
  }
}
