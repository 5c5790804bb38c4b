/**
 * `npm run bench:scale`: Chatter beside raw Bun at 5,000, 10,000 and 19,000
 * connections on one instance (scenario.ts): server RSS per idle connection,
 * broadcast fan-out to every connection, and round trips at one call a second
 * per connection. Prints a table, then the figures as JSON on the last line.
 * `--quick` measures 2,000 and 5,000 connections in one shorter round;
 * `--steps 5000,10000` picks the counts.
 */
import { runScale, type ScaleOptions, type ScaleResult, stopAll } from "./scenario.ts";

export { runScale };

/**
 * The scenario's settings: "full" for `npm run bench:scale`; "bench", one shorter round that `npm run bench`
 * folds in; "quick" for either's `--quick` (2,000 and 5,000 connections, about 30 s).
 */
export function scaleOptions(preset: "full" | "bench" | "quick", log: (line: string) => void = console.error): ScaleOptions {
  if (preset === "quick") return { steps: [2000, 5000], rounds: 1, broadcasts: 20, callSeconds: 2, log };
  if (preset === "bench") return { steps: [5000, 10_000, 19_000], rounds: 1, broadcasts: 50, callSeconds: 5, log };
  return { steps: [5000, 10_000, 19_000], rounds: 3, broadcasts: 50, callSeconds: 10, log };
}

/** @returns the scale figures for the bench's JSON line */
export function scaleKeys(result: ScaleResult) {
  const top = result.steps.at(-1);
  const round2 = (x: number) => Math.round(x * 100) / 100;
  // The worst step, since the target holds at each.
  const over = Math.max(...result.steps.map((s) => (s.bytesPerConn.chatter as number) - (s.bytesPerConn.raw as number)));
  return {
    scale_conns: top?.conns ?? 0,
    scale_bytes_per_conn_over_raw: Math.round(over),
    scale_fanout_ratio_vs_raw: round2((top?.fanout.chatter as number) / (top?.fanout.raw as number)),
    scale_call_p99_ratio_vs_raw: round2((top?.p99.chatter as number) / (top?.p99.raw as number)),
  };
}

/** @returns the scale figures as Markdown tables, one row per step */
export function scaleTable(result: ScaleResult): string {
  const k = (x: number | undefined) => (x === undefined ? "-" : x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0));
  const rows = result.steps.map((s) => {
    const b = s.bytesPerConn;
    const cells = [
      s.conns.toLocaleString("en"),
      k(b.raw),
      k(b.chatter),
      Math.round((b.chatter as number) - (b.raw as number)),
      k(s.fanout.raw),
      k(s.fanout.chatter),
      ((s.fanout.chatter as number) / (s.fanout.raw as number)).toFixed(2),
      `${k(s.p50.raw)} / ${k(s.p99.raw)}`,
      `${k(s.p50.chatter)} / ${k(s.p99.chatter)}`,
    ];
    return `| ${cells.join(" | ")} |`;
  });
  return [
    `server open-file limit ${result.fdLimit}${result.capped ? " (it capped the connections)" : ""}`,
    "",
    "| connections | raw B/conn | Chatter B/conn | over raw | raw fan-out/s | Chatter fan-out/s | ratio | raw µs p50 / p99 | Chatter µs p50 / p99 |",
    "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ...rows,
  ].join("\n");
}

if (import.meta.main) {
  const quick = process.argv.includes("--quick");
  const opts = scaleOptions(quick ? "quick" : "full");
  const at = process.argv.indexOf("--steps");
  if (at > 0) opts.steps = (process.argv[at + 1] ?? "").split(",").map(Number);
  const only = process.argv.indexOf("--systems");
  if (only > 0) opts.systems = (process.argv[only + 1] ?? "").split(",");
  const stop = () => {
    stopAll();
    process.exit(130);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    const result = await runScale(opts);
    console.log(`\nChatter at scale: Bun ${Bun.version}, ${navigator.hardwareConcurrency} cores, ${opts.rounds} round(s)\n`);
    console.log(scaleTable(result));
    console.log(
      `\nB/conn: server RSS growth per connection opened since the step before, read after a full GC (and after the step before had run its fan-out and calls; the first step counts from 1,000 open).`,
    );
    console.log(
      `fan-out: ${opts.broadcasts} broadcasts of 64 bytes to every connection; calls: one a second per connection, ${opts.callSeconds} s.`,
    );
    const skipped = result.steps.flatMap((s) =>
      Object.entries(s.skipped)
        .filter(([, n]) => n > 0)
        .map(([sys, n]) => `${sys} ${n} at ${s.conns}`),
    );
    if (skipped.length) console.log(`calls skipped (previous one unanswered after a second): ${skipped.join(", ")}`);
    console.log(JSON.stringify({ ...scaleKeys(result), rounds: opts.rounds, quick }));
  } finally {
    stopAll();
  }
}
