// runtime: bun
/**
 * Benchmark server for birpc: Bun.serve's WebSocket handler with one birpc
 * instance per socket, exposing `echo`, messages serialised as JSON text.
 * Follows the bench system contract: prints "READY <port>", then answers the
 * stdin line "cpu" with "CPU <microseconds>".
 * Run: bun bench/systems/birpc/server.ts
 */
import { createInterface } from "node:readline";
import { type BirpcReturn, createBirpc } from "birpc";

type Payload = { id: number; name: string; value: number };
const serverFunctions = { echo: (payload: Payload): Payload => payload };
type ClientFunctions = Record<string, never>;

/** Per-socket state: birpc's message listener, and the instance so it can be closed with the socket. */
type Conn = {
  deliver?: (data: unknown) => void;
  rpc?: BirpcReturn<ClientFunctions, typeof serverFunctions>;
};

const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch: (req, srv) => (srv.upgrade(req, { data: {} }) ? undefined : new Response("WebSocket only", { status: 426 })),
  websocket: {
    data: {} as Conn,
    perMessageDeflate: false,
    open(ws) {
      // birpc is channel-agnostic: hand it a way to send on this socket and let it register its listener.
      ws.data.rpc = createBirpc<ClientFunctions, typeof serverFunctions>(serverFunctions, {
        post: (data: string) => void ws.send(data),
        on: (fn) => {
          ws.data.deliver = fn;
        },
        // birpc's default serialiser is the identity; a WebSocket needs text or bytes.
        serialize: JSON.stringify,
        deserialize: JSON.parse,
      });
    },
    message(ws, msg) {
      ws.data.deliver?.(typeof msg === "string" ? msg : msg.toString());
    },
    close(ws) {
      ws.data.rpc?.$close();
    },
  },
});
console.log(`READY ${server.port}`);

// readline rather than Bun's `console` iterator, so all servers share one way of reading commands.
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "cpu") {
    const { user, system } = process.cpuUsage();
    console.log(`CPU ${user + system}`);
  }
});
