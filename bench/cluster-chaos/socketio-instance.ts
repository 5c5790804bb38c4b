/**
 * One Socket.IO 4 instance of the chaos cluster: @socket.io/redis-streams-adapter
 * over ioredis (which the adapter supports beside node-redis), with
 * connectionStateRecovery so a client that reconnects anywhere within 10 s
 * can get its id, rooms and missed packets back. Runs under Bun (node:http
 * and ioredis work there as they are). Follows the contract of `instanceKit`
 * in scenario.ts.
 */
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { Redis } from "ioredis";
import { Server, type Socket } from "socket.io";
import { instanceKit } from "./scenario.ts";
import { TOPIC } from "./socketio.ts";

const kit = instanceKit();
const redis = new Redis(kit.redisUrl);
const http = createServer();
const io = new Server(http, {
  transports: ["websocket"],
  serveClient: false,
  adapter: createAdapter(redis, {
    streamName: `${kit.prefix}:stream`,
    channelPrefix: kit.prefix,
    sessionKeyPrefix: `${kit.prefix}:session:`,
  }),
  connectionStateRecovery: { maxDisconnectionDuration: 10_000, skipMiddlewares: true },
});
io.on("connection", (socket) => {
  socket.on("subscribe", (ack: () => void) => {
    socket.join(TOPIC);
    ack();
  });
  socket.on("work", ({ key, slowMs }: { key: string; slowMs: number }, ack: (answer: string) => void) => {
    void kit.work(key, slowMs).then(ack);
  });
});
http.listen(0, "127.0.0.1", () => {
  const address = http.address();
  if (address === null || typeof address === "string") throw new Error("expected a TCP address");
  kit.run<Socket>({
    port: address.port,
    broadcast: (event) => io.to(TOPIC).emit("event", event),
    targets: () => [...io.of("/").sockets.values()].filter((s) => s.connected),
    callClient: (socket, key, timeout) => socket.timeout(timeout).emitWithAck("ask", key),
    codeOf: (err) => (err instanceof Error && err.message.includes("timed out") ? "TIMEOUT" : `ERROR ${String(err)}`),
  });
});
