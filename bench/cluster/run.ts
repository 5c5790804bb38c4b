// runtime: bun
/**
 * `npm run bench:cluster`: what a Redis cluster costs next to one instance. Fan-out (fanout.ts), resume
 * latency on the same or another instance (resume.ts), and call round trips direct, relayed and after a move
 * (calls.ts). Starts its own redis-server on a free port (Debian's redis-server must be installed) and kills
 * everything it started when it ends, fails or is interrupted.
 * Run: bun bench/cluster/run.ts [--quick] [--only=fanout|resume]
 */
import { runFanout, SETUP_LABELS, SETUPS } from "./fanout.ts";
import { startOwnRedis, stopAll } from "./processes.ts";
import { runResume, type Samples } from "./resume.ts";
import { RECONNECT } from "./session.ts";

const quick = process.argv.includes("--quick");
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
const FANOUT = { n: 600, k: quick ? 20 : 100, rounds: quick ? 3 : 5 };
const RESUME = { resumes: quick ? 20 : 100, takeovers: quick ? 5 : 40, calls: quick ? 400 : 2000 };
// A run that hangs (a resume that never comes, a lost delivery) must still end and clean up.
const BOUND_MS = quick ? 180_000 : 600_000;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? Number.NaN;
/** Nearest-rank percentile. */
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(p * xs.length) - 1)] ?? Number.NaN;
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const fmt = (x: number, digits = 1) => x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const row = (cells: (string | number)[], widths: number[]) =>
  cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i] as number) : String(c).padStart(widths[i] as number))).join("  ");

function stop(code: number, why?: string): never {
  if (why) console.error(why);
  stopAll();
  process.exit(code);
}
process.on("SIGINT", () => stop(130, "interrupted"));
process.on("SIGTERM", () => stop(143, "terminated"));
const watchdog = setTimeout(() => stop(1, `bench:cluster: still running after ${BOUND_MS / 1000} s; stopped`), BOUND_MS);

const json: Record<string, number> = {};
try {
  const redis = await startOwnRedis();
  if (only !== "resume") {
    const rates = await runFanout(redis.url, FANOUT);
    const single = median(rates.single);
    console.log(`\nFan-out: ${FANOUT.k} broadcasts to ${FANOUT.n} subscribers, medians of ${FANOUT.rounds} rounds`);
    console.log(row(["setup", "deliveries/s", "vs 1 instance"], [28, 13, 13]));
    for (const setup of SETUPS) {
      const rate = median(rates[setup]);
      console.log(row([SETUP_LABELS[setup], fmt(rate, 0), fmt(rate / single, 2)], [28, 13, 13]));
      json[`${setup === "three" ? "cluster" : setup}_fanout_per_s`] = Math.round(rate);
    }
    json.cluster_fanout_ratio_vs_single = round(median(rates.three) / single);
    json.cluster_log_fanout_ratio = round(median(rates.single_log) / single);
  }
  if (only !== "fanout") {
    const r = await runResume(redis.url, RESUME);
    const cases: [string, string, Samples][] = [
      ["local", "same instance, no cluster", r.local],
      ["home", "same instance, cluster", r.home],
      ["moved", "another instance, idle (moved)", r.moved],
      ["relayed", "another instance, call in flight (relayed)", r.relayed],
      ["takeover", "another instance, home SIGKILLed (taken over)", r.takeover],
    ];
    const w = [46, 4, 7, 7, 6, 8, 9];
    console.log(`\nResume: socket cut to session resumed, ms (client reconnect delays ${RECONNECT.minDelay}–${RECONNECT.maxDelay} ms)`);
    console.log(row(["case", "n", "p50", "p99", "resets", "timeouts", "misrouted"], w));
    for (const [key, label, s] of cases) {
      console.log(row([label, s.ms.length, fmt(pct(s.ms, 0.5)), fmt(pct(s.ms, 0.99)), s.resets, s.timeouts, s.misrouted], w));
      json[`resume_ms_p50_${key}`] = round(pct(s.ms, 0.5), 1);
      json[`resume_ms_p99_${key}`] = round(pct(s.ms, 0.99), 1);
      json[`resume_failures_${key}`] = s.resets + s.timeouts + s.misrouted;
    }
    const { moved, relayed, takenOver } = r.stats;
    console.log(`Cluster stats, summed over the three instances: moved ${moved}, relayed ${relayed}, taken over ${takenOver}`);
    Object.assign(json, { stats_moved: moved, stats_relayed: relayed, stats_taken_over: takenOver });
    const paths: [string, string, number[]][] = [
      ["lone", "one instance, no cluster", r.calls.lone],
      ["direct", "cluster, direct to the home", r.calls.direct],
      ["relayed", "cluster, relayed (a call held in flight)", r.calls.relayed],
      ["moved", "cluster, direct after the session moved", r.calls.moved],
    ];
    console.log(`\nSequential calls, one round trip, µs`);
    console.log(row(["path", "n", "p50", "p99"], [46, 5, 7, 7]));
    for (const [key, label, us] of paths) {
      console.log(row([label, us.length, fmt(pct(us, 0.5), 0), fmt(pct(us, 0.99), 0)], [46, 5, 7, 7]));
      json[`call_us_p50_${key}`] = Math.round(pct(us, 0.5));
      json[`call_us_p99_${key}`] = Math.round(pct(us, 0.99));
    }
    for (const key of ["relayed", "moved"] as const) {
      json[`${key}_call_p50_ratio`] = round(pct(r.calls[key], 0.5) / pct(r.calls.direct, 0.5));
      json[`${key}_call_p99_ratio`] = round(pct(r.calls[key], 0.99) / pct(r.calls.direct, 0.99));
    }
  }
} catch (err) {
  stop(1, `bench:cluster failed: ${(err as Error).stack ?? err}`);
} finally {
  clearTimeout(watchdog);
  stopAll();
}
console.log(JSON.stringify(json));
