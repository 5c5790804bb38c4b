// An instance that calls a client on another instance, then closes while the call waits (it waits for ever).
// Prints "CALLING", closes when its stdin ends, prints "CALL <outcome>", and must then exit by itself.
import { createServer } from "../../src/index.ts";
import { redisCluster } from "../../src/redis.ts";
import { HOLD } from "./procs.ts";

const cluster = redisCluster({ url: process.env.REDIS_URL, prefix: process.env.PREFIX, heartbeatMs: 200 });
const chatter = createServer({ cluster, secret: process.env.SECRET, onError: (err) => console.error(String(err)) });
await cluster.ready;
const outcome = chatter.callClient(process.env.TARGET as string, HOLD, "from a closing instance", { timeout: 0 }).then(
  () => "ANSWERED",
  (err) => String(err.code),
);
console.log("CALLING");
await Bun.stdin.text();
await chatter.close();
console.log(`CALL ${await outcome}`);
