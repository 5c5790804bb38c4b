/** The soak run's checks and figures: what the calls, broadcasts and heap readings must show for the run to pass. */
import type { SoakOptions, SoakResult } from "../soak.ts";
import { addOutcome, EXPECTED, newTally, type Tally } from "./agent.ts";

/** One memory reading of the server: the median of three after forced GCs; bytes. */
export interface Memory {
  heap: number;
  objects: number;
  /** Live objects by type. */
  types: Record<string, number>;
  rss: number;
  sessions: number;
}

export interface Readings {
  baseline: Memory;
  warm: Memory;
  end: Memory;
  afterLeave: Memory;
}

/** What the server process counted (see bench/soak/server.ts). */
export interface ServerStats {
  opened: number;
  closed: number;
  broadcasts: number;
  errors: number;
  s2c: Record<string, number>;
  s2cUnexpected: string[];
}

/** @returns the client processes' tallies added up */
export function sumTallies(tallies: Tally[]): Tally {
  const total = newTally();
  for (const t of tallies) {
    for (const [kind, outcomes] of Object.entries(t.outcomes)) {
      for (const [outcome, n] of Object.entries(outcomes)) addOutcome(total, kind, outcome, n);
    }
    for (const key of [
      "resetDisconnects",
      "unexpected",
      "resets",
      "ticks",
      "orderViolations",
      "hung",
      "skipped",
      "joined",
      "left",
    ] as const) {
      total[key] += t[key];
    }
    total.samples.push(...t.samples.slice(0, 10 - total.samples.length));
  }
  return total;
}

const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

/** Calls by outcome over every kind. */
function byOutcome(t: Tally): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const outcomes of Object.values(t.outcomes)) {
    for (const [outcome, n] of Object.entries(outcomes)) sums[outcome] = (sums[outcome] ?? 0) + n;
  }
  return sums;
}

/** @returns the object types that grew most from the baseline to after the clients left: where a leak would show */
function grownTypes(m: Readings): Record<string, number> {
  const grown = Object.entries(m.afterLeave.types).map(([type, n]) => [type, n - (m.baseline.types[type] ?? 0)] as const);
  return Object.fromEntries(grown.sort((a, b) => b[1] - a[1]).slice(0, 6));
}

/** Every call settled as its kind expects, broadcasts in order, and the load really ran. */
function checkCalls(o: SoakOptions, t: Tally, stats: ServerStats, cuts: number): string[] {
  const failures: string[] = [];
  const calls = Object.values(byOutcome(t)).reduce((a, b) => a + b, 0);
  if (t.unexpected) failures.push(`${t.unexpected} calls settled with an unexpected outcome, e.g. ${t.samples.join("; ")}`);
  if (t.hung) failures.push(`${t.hung} calls had not settled 10 s after their client stopped calling`);
  if (t.orderViolations) failures.push(`${t.orderViolations} broadcasts arrived twice or out of order`);
  const s2cBad = Object.entries(stats.s2c).filter(([k]) => k !== "ok" && k !== "DISCONNECTED");
  if (s2cBad.length)
    failures.push(`server-to-client calls settled wrongly: ${JSON.stringify(s2cBad)}, e.g. ${stats.s2cUnexpected.join("; ")}`);
  if (stats.errors) failures.push(`the server reported ${stats.errors} errors to onError`);
  const floor = o.clients * o.seconds * 3;
  if (calls < floor) failures.push(`only ${calls} calls settled; at least ${floor} (3 per client per second) were expected`);
  for (const [kind, expect] of Object.entries(EXPECTED)) {
    if (!t.outcomes[kind]?.[expect]) failures.push(`no ${kind} call settled with ${expect}`);
  }
  if (!t.ticks) failures.push("no broadcast arrived");
  if (!stats.s2c.ok) failures.push("no server-to-client call succeeded");
  if (!cuts) failures.push("the proxies cut no connection");
  return failures;
}

/** The heap stayed flat under load and came back near its baseline once every client had left. */
function checkMemory(o: SoakOptions, m: Readings): string[] {
  const failures: string[] = [];
  const growth = (m.end.heap - m.warm.heap) / m.warm.heap;
  if (growth > o.maxGrowth) {
    failures.push(
      `heap grew ${(growth * 100).toFixed(1)}% under load (after warm-up ${mb(m.warm.heap)} MB, at the end ${mb(m.end.heap)} MB; limit ${o.maxGrowth * 100}%)`,
    );
  }
  const bound = Math.max(m.baseline.heap + o.leaveMB * 2 ** 20, m.baseline.heap * o.leaveFactor);
  if (m.afterLeave.heap > bound) {
    failures.push(
      `heap ${mb(m.afterLeave.heap)} MB after every client left, over ${mb(bound)} MB (baseline ${mb(m.baseline.heap)} MB, plus ${o.leaveMB} MB or times ${o.leaveFactor}, whichever is more)`,
    );
  }
  if (m.afterLeave.sessions) failures.push(`${m.afterLeave.sessions} sessions still live once the resume window had passed`);
  return failures;
}

/** @returns the run's figures and every check that failed */
export function judge(o: SoakOptions, t: Tally, stats: ServerStats, m: Readings, cuts: number): SoakResult {
  const failures = [...checkCalls(o, t, stats, cuts), ...checkMemory(o, m)];
  const outcomes = byOutcome(t);
  const pick = (key: "heap" | "rss" | "objects" | "sessions") =>
    Object.fromEntries(Object.entries(m).map(([when, r]) => [when, key === "heap" || key === "rss" ? mb(r[key]) : r[key]]));
  const summary = {
    soak: failures.length ? "FAIL" : "PASS",
    seconds: o.seconds,
    clients: o.clients,
    procs: o.procs,
    calls: Object.values(outcomes).reduce((a, b) => a + b, 0),
    byOutcome: outcomes,
    unexpected: t.unexpected,
    hung: t.hung,
    skipped: t.skipped,
    resets: t.resets,
    resetDisconnects: t.resetDisconnects,
    cuts,
    joined: t.joined,
    left: t.left,
    broadcastsSent: stats.broadcasts,
    broadcastsReceived: t.ticks,
    orderViolations: t.orderViolations,
    serverToClient: stats.s2c,
    sessions: { opened: stats.opened, closed: stats.closed, ...pick("sessions") },
    heapMB: pick("heap"),
    heapGrowthPct: Math.round(((m.end.heap - m.warm.heap) / m.warm.heap) * 1000) / 10,
    heapObjects: pick("objects"),
    grownTypes: grownTypes(m),
    rssMB: pick("rss"),
    failures: failures.length,
  };
  return { summary, failures };
}
