// runtime: bun
/**
 * The limit: a bare Bun WebSocket server that echoes every message, publishes
 * to a topic for the fan-out benchmark, and sends a stream of items for the
 * stream row. Follows the bench system contract (bench/commands.ts): "READY
 * <port>", then answers stdin commands.
 */
import { Packr } from "msgpackr";
import { serveCommands } from "../../commands.ts";

// The stream row's items as MessagePack, as Chatter encodes them (src/wire/codec.ts: msgpackr, no records).
const packr = new Packr({ useRecords: false });

const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("WebSocket only", { status: 426 })),
  websocket: {
    perMessageDeflate: false,
    open: (ws) => void ws.subscribe("fanout"),
    message(ws, msg) {
      // {"fanout":k,"size":n} asks for k publishes of an n-byte frame (one a tick with "spread"); anything else is echoed.
      if (typeof msg === "string" && msg.startsWith('{"fanout"')) {
        const { fanout, size, spread } = JSON.parse(msg) as { fanout: number; size: number; spread?: boolean };
        const frame = new Uint8Array(size);
        if (spread) void publishSpread(fanout, frame);
        else for (let i = 0; i < fanout; i++) server.publish("fanout", frame);
        return;
      }
      // {"stream":n} asks for n items, one binary message each, sent as fast as Bun takes them (no flow control).
      if (typeof msg === "string" && msg.startsWith('{"stream"')) {
        const { stream } = JSON.parse(msg) as { stream: number };
        for (let i = 0; i < stream; i++) ws.send(packr.pack({ i, text: "token" }));
        return;
      }
      ws.send(msg);
    },
  },
});
/** k publishes, one a tick. */
async function publishSpread(k: number, frame: Uint8Array): Promise<void> {
  for (let i = 0; i < k; i++) {
    server.publish("fanout", frame);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
serveCommands(server.port as number);
