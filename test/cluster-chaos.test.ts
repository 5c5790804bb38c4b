/**
 * Issue #15's guarantees under chaos, on a real cluster: three Chatter
 * instance processes and a redis-server (appendonly), clients behind a proxy
 * that sends each new connection to a random instance and cuts everything
 * every 100-500 ms. The harness is bench/cluster-chaos (`npm run
 * bench:cluster-chaos` runs it longer, beside Socket.IO). Each test prints
 * its figures, so a failure shows what broke and how often.
 */
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { chatterSystem } from "../bench/cluster-chaos/chatter.ts";
import { type Figures, problems, runScenario } from "../bench/cluster-chaos/scenario.ts";

if (!existsSync("/usr/bin/redis-server")) throw new Error("no /usr/bin/redis-server: apt-get install -y redis-server (.ci/run does)");

function report(name: string, f: Figures) {
  console.log(`${name}: ${JSON.stringify(f)}`);
}

/** The run did what it set out to: traffic both ways, cuts, and every instance got connections. */
function expectBusy(f: Figures) {
  expect(f.cuts).toBeGreaterThan(10);
  expect(f.routed.every((n) => n > 0)).toBe(true);
  expect(f.broadcasts.expected).toBeGreaterThan(1000);
  expect(f.clientCalls.made).toBeGreaterThan(200);
  expect(f.serverCalls.made).toBeGreaterThan(50);
}

test("clients hopping between 3 instances through cuts and a Redis restart: every call and broadcast once, one order, no reset", async () => {
  const f = await runScenario(chatterSystem, { seconds: 10, restartRedisAt: 0.5, settleMs: 5000 });
  report("chaos", f);
  expectBusy(f);
  expect(f.redisDownMs).toBeGreaterThan(0);
  expect(problems(f)).toEqual([]);
}, 35_000);

test("clients that pause between calls: their sessions move to the instance they reconnect to, and every guarantee holds", async () => {
  // One call at a time per client with pauses, and few server calls: most reconnects find the session idle, so it
  // moves (cluster-sessions.ts) rather than being relayed.
  const f = await runScenario(chatterSystem, {
    seconds: 8,
    restartRedisAt: undefined,
    clientCallsInFlight: 1,
    callGapMs: [50, 150],
    serverCallMs: 200,
    serverCallsInFlight: 1,
    settleMs: 5000,
  });
  report("moving sessions", f);
  expect(f.cuts).toBeGreaterThan(10);
  expect(f.systemStats.moved).toBeGreaterThan(10);
  expect(problems(f)).toEqual([]);
}, 35_000);

test("an instance SIGKILLed mid-run: its clients resume elsewhere, calls running on it fail DISCONNECTED, the rest as above", async () => {
  // Every third call's handler takes 300 ms, so some are running when the instance dies.
  const f = await runScenario(chatterSystem, {
    seconds: 8,
    restartRedisAt: undefined,
    killInstanceAt: 0.5,
    slowEvery: 3,
    slowMs: 300,
    // A takeover waits until the dead instance has been silent for a presence lifetime after it was first found
    // silent (about 3 s with these instances' 500 ms heartbeat): calls its clients make meanwhile wait that long.
    callTimeoutMs: 10_000,
    settleMs: 8000,
  });
  report("instance death", f);
  expectBusy(f);
  expect(f.killed).toBe(0);
  expect(problems(f)).toEqual([]);
}, 35_000);
