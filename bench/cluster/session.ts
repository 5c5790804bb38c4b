/**
 * What the resume and call benches do to one client's session: connect it through a TCP proxy, cut it and time
 * the way back, ask which instance runs it, hold a call in flight on it, and read its home from its record.
 */
import type { Redis } from "ioredis";
import { type ChatterClient, ConnectionState, createClient } from "../../src/index.ts";
import { decode } from "../../src/wire/codec.ts";
import type { tcpProxy } from "../../test/proxy.ts";
import { ECHO, PAYLOAD } from "../procs.ts";
import type { Group } from "./processes.ts";
import { HOLD, RELEASE, WHERE } from "./procs.ts";

// minDelay 0 would make every retry immediate (the backoff scales it): 1 ms keeps retries cheap but not a spin.
export const RECONNECT = { minDelay: 1, maxDelay: 50 };
export type TcpProxy = Awaited<ReturnType<typeof tcpProxy>>;

/** A resume that came back: how long it took, and the port of the instance that runs the session now. */
export interface Resumed {
  ms: number;
  runsOn: number;
}
export type Outcome = Resumed | "timeout" | "reset";

/** Resolves at the client's next connect, with whether it resumed; `null` if none comes within `ms`. */
function nextConnect(client: ChatterClient, ms: number): Promise<boolean | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      off();
      resolve(null);
    }, ms);
    const off = client.onStateChange((state, { resumed }) => {
      if (state !== ConnectionState.Connected) return;
      clearTimeout(timer);
      off();
      resolve(resumed);
    });
  });
}

/** @returns a client connected through the proxy, one call made */
export async function connect(proxy: TcpProxy): Promise<ChatterClient> {
  const client = createClient({ url: proxy.url, reconnect: RECONNECT });
  if (!client.isConnected && (await nextConnect(client, 10_000)) === null) throw new Error("cluster bench: a client did not connect");
  await client.call(ECHO, PAYLOAD);
  return client;
}

/** @returns the port of the instance that runs the client's session (its home, even when the socket is relayed) */
export async function runsOn(client: ChatterClient): Promise<number> {
  return (await client.call(WHERE, undefined, { timeout: 5000 })).port;
}

/**
 * Points the proxy at `port`, then cuts the client's connection (or runs `drop`) and times the way back.
 * @returns the milliseconds and where the session runs, or the outcome that stopped it
 */
export async function resumeOnce(
  client: ChatterClient,
  proxy: TcpProxy,
  port: number,
  boundMs: number,
  drop = () => proxy.cutAll(),
): Promise<Outcome> {
  proxy.retarget(port);
  const back = nextConnect(client, boundMs);
  const t0 = performance.now();
  drop();
  const resumed = await back;
  const ms = performance.now() - t0;
  if (resumed === null) return "timeout";
  if (!resumed) return "reset";
  // One call on the new path before anything else; it says which instance runs the session.
  return { ms, runsOn: await runsOn(client) };
}

let holds = 0;

/**
 * Starts a call that stays in flight on the client's session until released, so the session cannot move.
 * @returns a function that releases it and waits for its answer
 */
export async function hold(client: ChatterClient): Promise<() => Promise<void>> {
  const key = `hold-${++holds}`;
  const answer = client.call(HOLD, { key, ms: 60_000 });
  answer.catch(() => {}); // Awaited on release; a client closed first must not report it as unhandled.
  await client.call(ECHO, PAYLOAD); // Calls of one socket start in order: when this answers, HOLD is running.
  return async () => {
    if (!(await client.call(RELEASE, key, { timeout: 5000 }))) {
      throw new Error(`cluster bench: call ${key} was not running on the instance that runs its session`);
    }
    await answer;
  };
}

/**
 * Waits until the session's record in Redis names a home other than `previous`: only then does another instance
 * find where it lives (before its first record it would get a fresh session; before its record names the
 * instance it moved to, it would look for it on the one it left).
 * @returns the home it names (an instance id)
 */
export async function recordedHome(redis: Redis, group: Group, sessionId: string, previous?: string): Promise<string> {
  const deadline = performance.now() + 5000;
  for (;;) {
    const bytes = await redis.getBuffer(`${group.prefix}:kv:session:${sessionId}`);
    const home = bytes ? (decode(bytes) as { home: string }).home : undefined;
    if (home !== undefined && home !== previous) return home;
    if (performance.now() > deadline) throw new Error(`cluster bench: the record of session ${sessionId} did not change after 5 s`);
    await Bun.sleep(2);
  }
}

/** @returns µs per call, `n` sequential calls */
export async function timeCalls(client: ChatterClient, n: number): Promise<number[]> {
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await client.call(ECHO, PAYLOAD);
    us.push((performance.now() - t0) * 1000);
  }
  return us;
}
