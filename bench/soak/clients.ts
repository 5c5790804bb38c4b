/**
 * A soak client process: runs many agents through the proxies, replaces a few
 * every second (some leave, as many arrive). Commands on stdin: `pause` (no new
 * calls; prints PAUSED once those in flight have settled), `resume`, and `stop`
 * (every agent leaves; prints its tally as `REPORT {json}`).
 * Usage: bun bench/soak/clients.ts '{"index":0,"clients":100,"urls":["ws://127.0.0.1:..."],"churn":0.02}'
 */
import { createInterface } from "node:readline";
import { Agent, newTally } from "./agent.ts";

interface Config {
  index: number;
  clients: number;
  urls: string[];
  /** Share of this process's clients that leave (and are replaced) each second. */
  churn: number;
}

const config = JSON.parse(process.argv[2] ?? "{}") as Config;
const tally = newTally();
const agents = new Set<Agent>();
const leaving = new Set<Promise<void>>();
let serial = 0;

function join(): void {
  const n = serial++;
  agents.add(new Agent(config.urls[n % config.urls.length] as string, `soak-${config.index}-${n}`, tally));
}

/** Lets an agent go: it finishes its calls in flight (up to 10 s) and closes. */
function leave(agent: Agent): void {
  agents.delete(agent);
  const gone = agent.leave(10_000).finally(() => leaving.delete(gone));
  leaving.add(gone);
}

for (let i = 0; i < config.clients; i++) join();
const deadline = Date.now() + 30_000;
while (![...agents].every((a) => a.client.isConnected)) {
  if (Date.now() > deadline) throw new Error(`soak clients ${config.index}: not all connected within 30 s`);
  await Bun.sleep(20);
}
console.log("READY");

let paused = false;
const churn = setInterval(() => {
  if (paused) return;
  const count = Math.max(1, Math.round(config.clients * config.churn));
  const pool = [...agents];
  for (let i = 0; i < count && pool.length; i++) leave(pool.splice(Math.floor(Math.random() * pool.length), 1)[0] as Agent);
  for (let i = 0; i < count; i++) join();
}, 1000);

/** For a quiet heap reading: no new calls, none in flight, nobody arriving or leaving. */
async function pause(): Promise<void> {
  paused = true;
  await Promise.all([...[...agents].map((a) => a.pause(10_000)), ...leaving]);
  console.log("PAUSED");
}

function resume(): void {
  paused = false;
  for (const agent of agents) agent.resume();
}

let stopping = false;
async function stop(): Promise<void> {
  stopping = true;
  clearInterval(churn);
  for (const agent of [...agents]) leave(agent);
  await Promise.all(leaving);
  console.log(`REPORT ${JSON.stringify(tally)}`);
  process.exit(0);
}

const input = createInterface({ input: process.stdin });
const commands: Record<string, () => unknown> = { pause, resume, stop };
input.on("line", (line) => commands[line.trim()]?.());
// The driver is gone: never outlive it (a stop under way ends by itself, within its 10 s bound).
input.on("close", () => stopping || process.exit(1));
