/**
 * Counting a chaos run: what was lost, doubled, reordered, failed or run
 * twice, from what the clients saw and what the instances recorded.
 */
import { answerFor, HOME_DIED, type InstanceRecord, type ScenarioOptions } from "./contract.ts";

export interface Observed {
  /** Per client, the broadcasts it got as "origin:n", in arrival order. */
  events: string[][];
  /** Per client-to-server call key, its result or error code (neither: still pending). */
  clientCalls: Map<string, { result?: string; code?: string }>;
  /** Per server-to-client call key, how often a client handler ran it. */
  serverCallRuns: Map<string, number>;
  resets: number;
}

export interface CallFigures {
  made: number;
  /** Settled with its own result. */
  ok: number;
  /** Settled with a result that is not its own. */
  wrong: number;
  /** Rejected, by error code (excused ones left out). */
  failed: Record<string, number>;
  /** Never settled within the bound. */
  hung: number;
  /** Handler ran two times or more. */
  ranTwice: number;
  /** Answered with its result, yet no handler ran. */
  ranNever: number;
}

export interface Figures {
  system: string;
  seconds: number;
  /** The instances' own counters, summed (Chatter: sessions moved, sockets relayed, sessions taken over...). */
  systemStats: Record<string, number>;
  cuts: number;
  /** New connections the proxy sent to each instance. */
  routed: number[];
  redisDownMs: number | undefined;
  killed: number | undefined;
  /** Whether every call settled and every instance finished within the bound. */
  settled: boolean;
  broadcasts: {
    expected: number;
    got: number;
    lost: number;
    doubled: number;
    unexpected: number;
    outOfOrder: number;
  };
  /** Pairs of clients whose sequences, over the broadcasts both got, differ. */
  order: { pairs: number; disagree: number; example: string | undefined };
  /** `excused`: calls that failed with DISCONNECTED and ran on the killed instance, or failed with HOME_DIED and ran nowhere else. */
  clientCalls: CallFigures & { excused: number };
  /** `callerDied`: calls made by the killed instance that it never saw settle. */
  serverCalls: CallFigures & { callerDied: number };
  resets: number;
  /** A few calls that did not go right, with where their handler ran and answered ("ran@0 answered@0"); lost broadcasts by origin. */
  samples: string[];
}

function emptyCalls(): CallFigures {
  return { made: 0, ok: 0, wrong: 0, failed: {}, hung: 0, ranTwice: 0, ranNever: 0 };
}

function countOutcome(f: CallFigures, key: string, outcome: { result?: string; code?: string } | undefined, runs: number) {
  f.made++;
  if (runs >= 2) f.ranTwice++;
  if (outcome?.result !== undefined) {
    if (outcome.result === answerFor(key)) f.ok++;
    else f.wrong++;
    if (runs === 0) f.ranNever++;
  } else if (outcome?.code !== undefined) f.failed[outcome.code] = (f.failed[outcome.code] ?? 0) + 1;
  else f.hung++;
}

function tallyBroadcasts(events: string[][], records: InstanceRecord[][], dead: boolean[]) {
  const expected = new Set<string>();
  for (const [origin, rs] of records.entries()) {
    let last = 0;
    for (const r of rs) if (r.t === (dead[origin] ? "sent" : "issued")) last = Math.max(last, r.n);
    // A dead instance's broadcast counts if it said it sent it, or if any client got it.
    if (dead[origin]) for (const id of events.flat()) if (id.startsWith(`${origin}:`)) last = Math.max(last, Number(id.split(":")[1]));
    for (let n = 1; n <= last; n++) expected.add(`${origin}:${n}`);
  }
  const b = { expected: expected.size * events.length, got: 0, lost: 0, doubled: 0, unexpected: 0, outOfOrder: 0 };
  const firsts: string[][] = [];
  /** Per origin, the broadcasts some client lacks. */
  const lostBy = new Map<string, string[]>();
  for (const seen of events) {
    const counts = new Map<string, number>();
    const first: string[] = [];
    const highest = new Map<string, number>();
    for (const id of seen) {
      b.got++;
      counts.set(id, (counts.get(id) ?? 0) + 1);
      if (counts.get(id) !== 1) continue;
      first.push(id);
      const [origin, n] = id.split(":") as [string, string];
      if (Number(n) < (highest.get(origin) ?? 0)) b.outOfOrder++;
      highest.set(origin, Math.max(Number(n), highest.get(origin) ?? 0));
    }
    for (const [id, count] of counts) {
      b.doubled += count - 1;
      if (!expected.has(id)) b.unexpected++;
    }
    for (const id of expected) {
      if (counts.has(id)) continue;
      b.lost++;
      const origin = id.split(":")[0] as string;
      const missed = lostBy.get(origin) ?? [];
      lostBy.set(origin, missed);
      if (!missed.includes(id)) missed.push(id);
    }
    firsts.push(first);
  }
  const lostNotes = [...lostBy].map(
    ([origin, ids]) => `origin ${origin}: ${ids.length} broadcasts missed by some client, ${ids[0]} to ${ids.at(-1)}`,
  );
  return { broadcasts: b, order: compareOrders(firsts), lostNotes };
}

function compareOrders(firsts: string[][]): Figures["order"] {
  const order: Figures["order"] = { pairs: 0, disagree: 0, example: undefined };
  for (let a = 0; a < firsts.length; a++) {
    for (let b = a + 1; b < firsts.length; b++) {
      order.pairs++;
      const inB = new Set(firsts[b]);
      const inA = new Set(firsts[a]);
      const seqA = (firsts[a] as string[]).filter((id) => inB.has(id));
      const seqB = (firsts[b] as string[]).filter((id) => inA.has(id));
      const at = seqA.findIndex((id, i) => id !== seqB[i]);
      if (at < 0) continue;
      order.disagree++;
      order.example ??= `client ${a} got ${seqA[at]} where client ${b} got ${seqB[at]} (common position ${at})`;
    }
  }
  return order;
}

/** Counts everything the scenario checks, from what the clients saw and what the instances recorded. */
export function tally(
  system: string,
  o: ScenarioOptions,
  observed: Observed,
  records: InstanceRecord[][],
  dead: boolean[],
  run: Pick<Figures, "cuts" | "routed" | "redisDownMs" | "killed" | "settled">,
): Figures {
  const runs = new Map<string, number>();
  const ranOnDead = new Set<string>();
  const where = new Map<string, string[]>();
  const samples: string[] = [];
  const sample = (key: string, outcome: { result?: string; code?: string } | undefined, serverRuns?: number) => {
    if (samples.length >= 8 || outcome?.result === answerFor(key)) return;
    const trail = serverRuns === undefined ? (where.get(key) ?? []).join(" ") || "never ran" : `client ran it ${serverRuns}x`;
    samples.push(`${key}: ${outcome?.code ?? outcome?.result ?? "hung"} (${trail})`);
  };
  const serverCalls = { ...emptyCalls(), callerDied: 0 };
  for (const [origin, rs] of records.entries()) {
    const outcomes = new Map<string, { result?: string; code?: string } | undefined>();
    for (const r of rs) {
      if (r.t === "ran" || r.t === "answered") where.set(r.key, [...(where.get(r.key) ?? []), `${r.t}@${origin}`]);
      if (r.t === "ran") {
        runs.set(r.key, (runs.get(r.key) ?? 0) + 1);
        if (dead[origin]) ranOnDead.add(r.key);
      } else if (r.t === "scall") outcomes.set(r.key, undefined);
      else if (r.t === "sdone") outcomes.set(r.key, r);
    }
    for (const [key, outcome] of outcomes) {
      if (dead[origin] && !outcome) serverCalls.callerDied++;
      else {
        countOutcome(serverCalls, key, outcome, observed.serverCallRuns.get(key) ?? 0);
        sample(key, outcome, observed.serverCallRuns.get(key) ?? 0);
      }
    }
  }
  const { broadcasts, order, lostNotes } = tallyBroadcasts(observed.events, records, dead);
  samples.push(...lostNotes);
  const clientCalls = { ...emptyCalls(), excused: 0 };
  // Sent to the instance holding the caller's session when it died: it may have had the call, so the call fails
  // with DISCONNECTED whether or not it ran there (never twice). The system names that failure HOME_DIED
  // (Chatter: WELCOME's callsLost), and such a call must not have run anywhere else.
  const excused = (key: string, code: string | undefined) =>
    (code === "DISCONNECTED" && ranOnDead.has(key)) || (code === HOME_DIED && (runs.get(key) ?? 0) === (ranOnDead.has(key) ? 1 : 0));
  for (const [key, outcome] of observed.clientCalls) {
    if (excused(key, outcome.code)) {
      clientCalls.made++;
      clientCalls.excused++;
      if ((runs.get(key) ?? 0) >= 2) clientCalls.ranTwice++;
    } else {
      countOutcome(clientCalls, key, outcome, runs.get(key) ?? 0);
      sample(key, outcome);
    }
  }
  const systemStats: Record<string, number> = {};
  for (const rs of records) {
    for (const r of rs) if (r.t === "stats") for (const [k, v] of Object.entries(r.stats)) systemStats[k] = (systemStats[k] ?? 0) + v;
  }
  return {
    system,
    seconds: o.seconds,
    systemStats,
    ...run,
    broadcasts,
    order,
    clientCalls,
    serverCalls,
    resets: observed.resets,
    samples,
  };
}

/** @returns one line per figure that should be zero but is not (empty when the guarantees held) */
export function problems(f: Figures): string[] {
  const out: string[] = [];
  const nonzero = (name: string, value: number) => value !== 0 && out.push(`${name}: ${value}`);
  nonzero("broadcasts lost", f.broadcasts.lost);
  nonzero("broadcasts doubled", f.broadcasts.doubled);
  nonzero("broadcasts unexpected", f.broadcasts.unexpected);
  nonzero("broadcasts out of order per origin", f.broadcasts.outOfOrder);
  nonzero("client pairs disagreeing on order", f.order.disagree);
  for (const [name, calls] of [
    ["client->server", f.clientCalls],
    ["server->client", f.serverCalls],
  ] as const) {
    nonzero(`${name} calls wrong`, calls.wrong);
    for (const [code, count] of Object.entries(calls.failed)) nonzero(`${name} calls failed ${code}`, count);
    nonzero(`${name} calls hung`, calls.hung);
    nonzero(`${name} handlers ran twice`, calls.ranTwice);
    nonzero(`${name} answered without running`, calls.ranNever);
  }
  nonzero("session resets", f.resets);
  if (!f.settled) out.push("did not settle within the bound");
  return out;
}
