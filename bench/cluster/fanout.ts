/**
 * Fan-out: deliveries per second of K broadcasts to N subscribers, in three setups that alternate within each
 * round: one instance without Redis, one instance in a Redis cluster (every broadcast goes through the cluster's
 * log, so this isolates the log's cost), and three instances in a Redis cluster with the subscribers spread
 * over them. The subscribers are raw sockets that speak just enough protocol (HELLO) and count EVENT frames.
 */
import { decodeFrames, encodeFrame, FrameType, PROTOCOL_VERSION } from "../../src/wire/frames.ts";
import { newGroup, startInstances, stopInstances } from "./processes.ts";

export const SETUPS = ["single", "single_log", "three"] as const;
export type Setup = (typeof SETUPS)[number];
export const SETUP_LABELS: Record<Setup, string> = {
  single: "1 instance, no Redis",
  single_log: "1 instance + Redis cluster",
  three: "3 instances + Redis cluster",
};

const BLOB = 40;

/** Opens N handshaken sockets spread over the ports, then times K broadcasts sent from the first instance. */
async function measure(ports: number[], n: number, k: number): Promise<number> {
  const sockets = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const ws = new WebSocket(`ws://127.0.0.1:${ports[i % ports.length]}/`);
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
  await Bun.sleep(300); // every instance has its subscribers, and the cluster its presence
  let received = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`fan-out: ${received} of ${n * k} deliveries after 30 s`)), 30_000);
    for (const ws of sockets) {
      ws.onmessage = (ev) => {
        // A message of one frame is counted by its type byte (after the array's header): decoding would cost the
        // receivers more than the server spends per delivery. A longer message may hold several frames.
        const bytes = new Uint8Array(ev.data as ArrayBuffer);
        if (bytes.byteLength < 2 * BLOB) received += bytes[1] === FrameType.Event ? 1 : 0;
        else for (const f of decodeFrames(bytes)) if (f[0] === FrameType.Event) received++;
        if (received === n * k) resolve();
      };
    }
  });
  const t0 = performance.now();
  sockets[0]?.send(encodeFrame([FrameType.Call, 1, "fanout", { k, size: BLOB }, 0, 1]));
  try {
    await done;
  } finally {
    clearTimeout(timer);
    for (const ws of sockets) ws.close();
  }
  return ((n * k) / (performance.now() - t0)) * 1000;
}

/** @returns each setup's deliveries/s, one figure per round */
export async function runFanout(redisUrl: string, opts: { n: number; k: number; rounds: number }) {
  const rates: Record<Setup, number[]> = { single: [], single_log: [], three: [] };
  for (let round = 0; round < opts.rounds; round++) {
    // Rotate the order, so no setup always runs first (or last) in a round.
    const order = SETUPS.map((_, i) => SETUPS[(i + round) % SETUPS.length] as Setup);
    for (const setup of order) {
      const group = newGroup(setup === "single" ? undefined : redisUrl);
      const instances = await startInstances(group, setup === "three" ? 3 : 1);
      try {
        rates[setup].push(
          await measure(
            instances.map((i) => i.port),
            opts.n,
            opts.k,
          ),
        );
      } finally {
        await stopInstances(instances);
      }
    }
  }
  return rates;
}
