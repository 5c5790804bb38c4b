// runtime: node
/**
 * Benchmark server for Socket.IO 4: an `echo` event answered through its
 * acknowledgement callback. Follows the bench system contract: prints
 * "READY <port>", then answers the stdin line "cpu" with "CPU <microseconds>".
 * Run on Node (Socket.IO's home runtime), from an esbuild bundle:
 *   esbuild bench/systems/socketio/server.ts --bundle --platform=node --format=esm --packages=external
 */
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Server } from "socket.io";

type Payload = { id: number; name: string; value: number };
type ClientToServer = { echo: (payload: Payload, ack: (reply: Payload) => void) => void };

const http = createServer();
const io = new Server<ClientToServer>(http, {
  // WebSocket only and uncompressed, so every system is measured on the same kind of wire.
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
});

io.on("connection", (socket) => {
  // A client that emits without asking for an acknowledgement gets nothing back rather than crashing the server.
  socket.on("echo", (payload, ack) => typeof ack === "function" && ack(payload));
});

http.listen(0, "127.0.0.1", () => {
  const address = http.address();
  if (address === null || typeof address === "string") throw new Error("expected a TCP address");
  console.log(`READY ${address.port}`);
});

// readline rather than Bun's `console` iterator, because this runs on Node.
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "cpu") {
    const { user, system } = process.cpuUsage();
    console.log(`CPU ${user + system}`);
  }
});
