// runtime: bun
/**
 * One Chatter instance for `npm run bench:cluster`: the bench's echo, a procedure that broadcasts to every
 * connection (all join "fanout" on open), and the probes of procs.ts (which instance runs a session, a call held
 * in flight). With REDIS_URL it joins the cluster named by PREFIX; HEARTBEAT_MS sets its presence heartbeat (an
 * instance the bench kills beats every 200 ms, so its death is known in about 0.6 s). Prints "READY <port>".
 */
import { createServer } from "../../src/index.ts";
import { redisCluster } from "../../src/redis.ts";
import { ECHO, FANOUT, NOTE } from "../procs.ts";
import { HOLD, RELEASE, WHERE } from "./procs.ts";

const { REDIS_URL, PREFIX, HEARTBEAT_MS, SECRET } = process.env;
const cluster = REDIS_URL
  ? redisCluster({ url: REDIS_URL, prefix: PREFIX, heartbeatMs: HEARTBEAT_MS ? Number(HEARTBEAT_MS) : undefined })
  : undefined;
const chatter = createServer({
  cluster,
  // The same on every instance, so a client's id (and so its session) is recognised wherever it reconnects.
  secret: SECRET,
  // Every client comes from 127.0.0.1 and reconnects hundreds of times.
  rateLimit: false,
  maxFramesPerSecond: 0,
  maxConnectionsPerAddress: 100_000,
  onOpen: (conn) => conn.subscribe("fanout"),
  onError: (err) => console.error(`instance: ${String(err)}`),
});
chatter.on(ECHO, (payload) => payload);
chatter.on(FANOUT, ({ k, size }) => {
  const blob = new Uint8Array(size);
  for (let i = 0; i < k; i++) chatter.broadcast("fanout", NOTE, blob);
});
chatter.on(WHERE, () => {
  const stats = cluster?.stats;
  return { port: server.port ?? 0, moved: stats?.moved ?? 0, relayed: stats?.relayed ?? 0, takenOver: stats?.takenOver ?? 0 };
});
const held = new Map<string, () => void>();
chatter.on(
  HOLD,
  ({ key, ms }) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        held.delete(key);
        resolve(false);
      }, ms);
      held.set(key, () => {
        clearTimeout(timer);
        held.delete(key);
        resolve(true);
      });
    }),
);
chatter.on(RELEASE, (key) => {
  const release = held.get(key);
  release?.();
  return release !== undefined;
});
await cluster?.ready;
const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req, srv) => chatter.upgrade(req, srv), websocket: chatter.websocket });
console.log(`READY ${server.port}`);
