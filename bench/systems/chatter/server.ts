// runtime: bun
/**
 * Chatter on Bun: an echo procedure, a procedure that calls the client back,
 * one that broadcasts to every connection (all join "fanout" on open), and a
 * stream of n items for the stream row.
 */
import { createServer } from "../../../src/index.ts";
import { redisCluster } from "../../../src/redis.ts";
import { serveCommands } from "../../commands.ts";
import { CALL_ME_BACK, ECHO, FANOUT, NOTE, TOKENS } from "../../procs.ts";

// With REDIS_URL set, this instance joins a cluster (bench/cluster-fanout.ts).
const cluster = process.env.REDIS_URL ? redisCluster({ url: process.env.REDIS_URL, prefix: process.env.PREFIX }) : undefined;
const chatter = createServer({
  cluster,
  rateLimit: false,
  maxConcurrentCalls: 100_000,
  // One load connection pipelines far more than the default 50,000 frames per second.
  maxFramesPerSecond: 0,
  // Every load connection comes from 127.0.0.1, and the idle rows open thousands.
  maxConnectionsPerAddress: 100_000,
  onOpen: (conn) => conn.subscribe("fanout"),
});
chatter.on(ECHO, (payload) => payload);
chatter.on(CALL_ME_BACK, async ({ n, window }, conn) => {
  let started = 0;
  const worker = async () => {
    while (started < n) {
      started++;
      await conn.call(ECHO, { id: started, name: "update_count", value: 7 });
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  return n;
});
chatter.on(FANOUT, ({ k, size, spread }) => {
  const blob = new Uint8Array(size);
  if (spread) return broadcastSpread(k, blob);
  for (let i = 0; i < k; i++) chatter.broadcast("fanout", NOTE, blob);
});
/** k broadcasts, one a tick: nothing to gather, so each is a publish of its own, as each of raw's is. */
async function broadcastSpread(k: number, blob: Uint8Array<ArrayBuffer>): Promise<void> {
  for (let i = 0; i < k; i++) {
    chatter.broadcast("fanout", NOTE, blob);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
chatter.on(TOKENS, async function* ({ n }) {
  for (let i = 0; i < n; i++) yield { i, text: "token" };
});
await cluster?.ready;
const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req, srv) => chatter.upgrade(req, srv), websocket: chatter.websocket });
serveCommands(server.port as number);
