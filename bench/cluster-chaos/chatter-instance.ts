/**
 * One Chatter instance of the chaos cluster, on Bun, joined through Redis.
 * Follows the contract of `instanceKit` in scenario.ts.
 */
import { createServer, type ServerConnection } from "../../src/index.ts";
import { redisCluster } from "../../src/redis.ts";
import { ASK, EVENT, SUBSCRIBE, TOPIC, WORK } from "./chatter.ts";
import { instanceKit } from "./scenario.ts";

const kit = instanceKit();
// A dead instance is known once its presence expires (3 heartbeats): 1.5 s here, well inside the 5 s call timeout.
const cluster = redisCluster({ url: kit.redisUrl, prefix: kit.prefix, heartbeatMs: 500 });
const chatter = createServer({
  cluster,
  secret: process.env.SECRET,
  resumeWindow: 10_000,
  // Every client reconnects several times a second through one address.
  rateLimit: false,
  onError: (err) => console.error(String(err)),
});
chatter.on(SUBSCRIBE, (_, connection) => connection.subscribe(TOPIC));
chatter.on(WORK, ({ key, slowMs }) => kit.work(key, slowMs));
await cluster.ready;
const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch: (req, srv) => chatter.upgrade(req, srv),
  websocket: chatter.websocket,
});
kit.run<ServerConnection>({
  port: server.port as number,
  broadcast: (event) => chatter.broadcast(TOPIC, EVENT, event),
  targets: () => [...chatter.connections].filter((c) => c.isConnected),
  callClient: (connection, key, timeout) => connection.call(ASK, key, { timeout }),
  codeOf: (err) => String((err as { code?: unknown }).code ?? err),
  stats: () => ({ ...cluster.stats }),
});
