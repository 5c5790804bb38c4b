/**
 * Cross-instance fan-out through Redis: deliveries per second of K broadcasts
 * to N subscribers spread over 3 Chatter instances, next to the same N on one
 * instance. Starts its own redis-server on a free port (Debian's
 * redis-server must be installed). Run: bun bench/cluster-fanout.ts [--quick]
 */
import { encodeFrame, FrameType, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import { freePort, readUntil, startRedis } from "../test/processes.ts";

const quick = process.argv.includes("--quick");
const N = 600;
const K = quick ? 10 : 30;
const ROUNDS = quick ? 3 : 5;
const BLOB = 40;

async function startInstances(count: number, redisUrl: string | undefined) {
  const prefix = `bench-${Date.now()}-${Math.random()}`;
  return Promise.all(
    Array.from({ length: count }, async () => {
      const env = { ...process.env, PREFIX: prefix, ...(redisUrl ? { REDIS_URL: redisUrl } : {}) };
      const proc = Bun.spawn([process.execPath, `${import.meta.dir}/systems/chatter/server.ts`], {
        env,
        stdin: "pipe",
        stdout: "pipe",
        stderr: "inherit",
      });
      const port = Number(/READY (\d+)/.exec(await readUntil(proc.stdout as ReadableStream<Uint8Array>, /READY \d+/))?.[1]);
      return { proc, port };
    }),
  );
}

/** Opens N handshaken sockets spread over the ports (all join "fanout" on open), then measures K broadcasts. */
async function measure(ports: number[]): Promise<number> {
  const sockets = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const ws = new WebSocket(`ws://127.0.0.1:${ports[i % ports.length]}/?cid=f${i}`);
      ws.binaryType = "arraybuffer";
      await new Promise((r) => {
        ws.onopen = r;
      });
      ws.send(encodeFrame([FrameType.Hello, PROTOCOL_VERSION, `f${i}`, `fs${i}`, null, 0, 1]));
      await new Promise((r) => {
        ws.onmessage = r;
      });
      return ws;
    }),
  );
  await Bun.sleep(300); // let every instance see its subscribers
  let received = 0;
  const done = new Promise<void>((resolve) => {
    for (const ws of sockets) {
      ws.onmessage = (ev) => {
        if ((ev.data as ArrayBuffer).byteLength >= BLOB && ++received === N * K) resolve();
      };
    }
  });
  const t0 = performance.now();
  sockets[0]?.send(encodeFrame([FrameType.Call, 1, "fanout", { k: K, size: BLOB }, 0, 1]));
  await done;
  const rate = ((N * K) / (performance.now() - t0)) * 1000;
  for (const ws of sockets) ws.close();
  return rate;
}

const redisPort = freePort();
const redis = await startRedis(redisPort);
const rates = { one: [] as number[], three: [] as number[] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const setup of round % 2 ? (["three", "one"] as const) : (["one", "three"] as const)) {
      const instances = await startInstances(setup === "one" ? 1 : 3, setup === "one" ? undefined : `redis://127.0.0.1:${redisPort}`);
      try {
        rates[setup].push(await measure(instances.map((i) => i.port)));
      } finally {
        for (const i of instances) i.proc.kill();
      }
    }
  }
} finally {
  redis.kill();
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
const one = median(rates.one);
const three = median(rates.three);
console.log(`fan-out of ${K} broadcasts to ${N} subscribers, medians of ${ROUNDS} rounds:`);
console.log(`  one instance:            ${Math.round(one)} deliveries/s`);
console.log(`  three instances + Redis: ${Math.round(three)} deliveries/s`);
console.log(
  JSON.stringify({
    cluster_fanout_per_s: Math.round(three),
    single_fanout_per_s: Math.round(one),
    cluster_vs_single: Math.round((three / one) * 100) / 100,
  }),
);
