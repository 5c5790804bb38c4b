/**
 * `npm run bench:cluster-chaos`: the chaos scenario of issue #15 (scenario.ts)
 * against Chatter and Socket.IO, alternating within each round, `--runs`
 * rounds (default 3) of `--seconds` each (default 15). Prints a row per run,
 * then one JSON line with each system's medians.
 *   --only chatter|socketio   one system
 *   --pin N                   send every connection to instance N (no hopping), to check the harness
 *   --no-redis-restart        leave Redis up
 *   --kill-instance           SIGKILL instance 0 halfway through (every third call's handler then takes 300 ms)
 */
import { chatterSystem } from "./chatter.ts";
import { type Figures, runScenario, type System } from "./scenario.ts";
import { socketioSystem } from "./socketio.ts";

function flag(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? undefined : process.argv[at + 1];
}

const seconds = Number(flag("seconds") ?? 15);
const runs = Number(flag("runs") ?? 3);
const only = flag("only");
const pin = flag("pin") === undefined ? undefined : Number(flag("pin"));
const restart = !process.argv.includes("--no-redis-restart");
const kill = process.argv.includes("--kill-instance");
const systems = [chatterSystem, socketioSystem].filter((s) => !only || s.name === only);
if (!systems.length) throw new Error(`--only takes chatter or socketio, not ${only}`);

const failed = (f: Record<string, number>) => Object.values(f).reduce((a, b) => a + b, 0);
const codes = (f: Record<string, number>) =>
  Object.entries(f)
    .map(([code, n]) => `${code}:${n}`)
    .join(" ") || "-";

/** The figures of one run, flat, for the table and the medians. */
function row(f: Figures): Record<string, number> {
  return {
    cuts: f.cuts,
    redisDownMs: f.redisDownMs ?? 0,
    bcastExpected: f.broadcasts.expected,
    bcastLost: f.broadcasts.lost,
    bcastDoubled: f.broadcasts.doubled,
    bcastOutOfOrder: f.broadcasts.outOfOrder,
    orderPairsDisagree: f.order.disagree,
    c2sMade: f.clientCalls.made,
    c2sOk: f.clientCalls.ok,
    c2sWrong: f.clientCalls.wrong,
    c2sFailed: failed(f.clientCalls.failed),
    c2sHung: f.clientCalls.hung,
    c2sExcused: f.clientCalls.excused,
    c2sRanTwice: f.clientCalls.ranTwice,
    s2cMade: f.serverCalls.made,
    s2cOk: f.serverCalls.ok,
    s2cWrong: f.serverCalls.wrong,
    s2cFailed: failed(f.serverCalls.failed),
    s2cHung: f.serverCalls.hung,
    s2cRanTwice: f.serverCalls.ranTwice,
    s2cCallerDied: f.serverCalls.callerDied,
    resets: f.resets,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

console.log(
  `cluster chaos: 3 instances, 6 clients, cuts every 100-500 ms, ${seconds} s per run, ${runs} run(s)` +
    `${restart ? ", Redis restarted mid-run" : ""}${kill ? ", instance 0 killed mid-run" : ""}` +
    `${pin === undefined ? "" : `, pinned to instance ${pin}`}`,
);
const header = [
  "system",
  "run",
  "cuts",
  "bcast lost/expected",
  "doubled",
  "order pairs",
  "c->s ok/made",
  "c->s failed",
  "hung",
  "ran twice",
  "s->c ok/made",
  "s->c failed",
  "hung",
  "ran twice",
  "resets",
];
console.log(header.join(" | "));
const results = new Map<System, Figures[]>(systems.map((s) => [s, []]));
for (let r = 1; r <= runs; r++) {
  for (const system of systems) {
    const f = await runScenario(system, {
      seconds,
      pin,
      restartRedisAt: restart ? 0.5 : undefined,
      ...(kill ? { killInstanceAt: 0.5, slowEvery: 3 } : {}),
      log: (line) => console.error(`  ${line}`),
    });
    results.get(system)?.push(f);
    console.error(`  connections routed per instance: ${f.routed.join(", ")}; ${f.order.example ?? "every pair agreed on order"}`);
    for (const line of f.samples) console.error(`  ${line}`);
    console.log(
      [
        system.name,
        r,
        f.cuts,
        `${f.broadcasts.lost}/${f.broadcasts.expected}`,
        f.broadcasts.doubled,
        `${f.order.disagree}/${f.order.pairs}`,
        `${f.clientCalls.ok}/${f.clientCalls.made}`,
        codes(f.clientCalls.failed) + (f.clientCalls.excused ? ` (+${f.clientCalls.excused} excused)` : ""),
        f.clientCalls.hung,
        f.clientCalls.ranTwice,
        `${f.serverCalls.ok}/${f.serverCalls.made}`,
        codes(f.serverCalls.failed),
        f.serverCalls.hung,
        f.serverCalls.ranTwice,
        f.resets,
      ].join(" | "),
    );
  }
}
const medians: Record<string, Record<string, number>> = {};
for (const [system, figures] of results) {
  const rows = figures.map(row);
  medians[system.name] = Object.fromEntries(Object.keys(rows[0] ?? {}).map((k) => [k, median(rows.map((x) => x[k] as number))]));
}
console.log(JSON.stringify({ seconds, runs, pin: pin ?? null, redisRestart: restart, killInstance: kill, medians }));
