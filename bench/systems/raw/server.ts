// runtime: bun
/**
 * The limit: a bare Bun WebSocket server that echoes every message, and
 * publishes to a topic for the fan-out benchmark. Follows the bench system
 * contract (bench/systems.ts): "READY <port>", then answers stdin commands.
 */
import { serveCommands } from "../../commands.ts";

const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("WebSocket only", { status: 426 })),
  websocket: {
    perMessageDeflate: false,
    open: (ws) => void ws.subscribe("fanout"),
    message(ws, msg) {
      // {"fanout":k,"size":n} asks for k publishes of an n-byte frame; anything else is echoed.
      if (typeof msg === "string" && msg.startsWith('{"fanout"')) {
        const { fanout, size } = JSON.parse(msg) as { fanout: number; size: number };
        const frame = new Uint8Array(size);
        for (let i = 0; i < fanout; i++) server.publish("fanout", frame);
        return;
      }
      ws.send(msg);
    },
  },
});
serveCommands(server.port as number);
