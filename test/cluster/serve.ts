// One Chatter instance of the test cluster. Prints "READY <port>".
import { createServer } from "../../src/index.ts";
import { redisCluster } from "../../src/redis.ts";
import {
  ABORT_HELD,
  BROADCAST,
  CALL_CLIENT,
  CALL_HELD,
  ECHO,
  ECHO_LATER,
  HOLD,
  MEMBERS,
  NOTE,
  PRESENCE,
  SHUT_DOWN,
  SLOW,
  STATS,
  SUBSCRIBE,
  WHO_AM_I,
} from "./procs.ts";

const cluster = redisCluster({ url: process.env.REDIS_URL, prefix: process.env.PREFIX, heartbeatMs: 200 });
const instance = crypto.randomUUID();
const chatter = createServer({
  cluster,
  secret: process.env.SECRET,
  rateLimit: false,
  getConnectionData: (req) => ({ name: new URL(req.url).searchParams.get("name") ?? "anon" }),
  onError: (err) => console.error(String(err)),
});
chatter.on(WHO_AM_I, (_, c) => ({ clientId: c.clientId, sessionId: c.sessionId, data: c.data, instance }));
chatter.on(SLOW, async (ms) => {
  await Bun.sleep(ms);
  return instance;
});
chatter.on(SHUT_DOWN, () => void setTimeout(() => void chatter.close({ timeout: 100 }), 10));
chatter.on(MEMBERS, async (topic) => (await chatter.members(topic)).map((m) => ({ clientId: m.clientId, name: m.data.name })));
chatter.on(ECHO_LATER, async (ms, c) => {
  await Bun.sleep(ms);
  return c.call(ECHO, "later");
});
chatter.on(SUBSCRIBE, (topic, c) => c.subscribe(topic));
chatter.on(BROADCAST, ({ topic, text, fromSelf }, c) => (fromSelf ? c.broadcast(topic, NOTE, text) : chatter.broadcast(topic, NOTE, text)));
chatter.on(CALL_CLIENT, ({ clientId, text }) => chatter.callClient(clientId, ECHO, text));
chatter.on(PRESENCE, (topic) => chatter.presence(topic));
chatter.on(STATS, () => ({ ...cluster.stats }));
const held = new Map<string, AbortController>();
chatter.on(CALL_HELD, async ({ clientId, key, timeout }) => {
  const controller = new AbortController();
  held.set(key, controller);
  try {
    return await chatter.callClient(clientId, HOLD, key, { timeout, signal: controller.signal });
  } finally {
    held.delete(key);
  }
});
chatter.on(ABORT_HELD, (key) => held.get(key)?.abort());
await cluster.ready;
const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req, srv) => chatter.upgrade(req, srv), websocket: chatter.websocket });
console.log(`READY ${server.port}`);
