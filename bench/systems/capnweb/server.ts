// runtime: bun
/**
 * Benchmark server for Cap'n Web (capnweb) on Bun, using the Bun WebSocket
 * handler capnweb documents (README, "HTTP server on Bun"): one RPC session
 * per socket, whose main object is an RpcTarget with `echo`, and `tokens`
 * for the stream row: a ReadableStream that makes one item per pull, as a
 * generator would (capnweb README, "Streaming with flow control").
 * Follows the bench system contract: prints "READY <port>", then answers the
 * stdin line "cpu" with "CPU <microseconds>".
 * Run: bun bench/systems/capnweb/server.ts
 */

import { createInterface } from "node:readline";
import type { WebSocketHandler } from "bun";
import * as capnweb from "capnweb";
import { RpcTarget } from "capnweb";

type Payload = { id: number; name: string; value: number };

class EchoApi extends RpcTarget {
  echo(payload: Payload): Payload {
    return payload;
  }
  tokens(n: number): ReadableStream<{ i: number; text: string }> {
    let i = 0;
    return new ReadableStream({
      pull: (controller) => (i < n ? controller.enqueue({ i: i++, text: "token" }) : controller.close()),
    });
  }
}

// Bun loads capnweb through its "bun" export condition, a build that adds newBunWebSocketRpcHandler.
// tsc resolves the runtime-neutral typings, which lack it, so its shape is spelled out here. The handler
// sets ws.data itself in `open`, so the upgrade passes no data.
type BunRpcHandlerFactory = (createMain: () => RpcTarget) => WebSocketHandler<undefined>;
const { newBunWebSocketRpcHandler } = capnweb as typeof capnweb & { newBunWebSocketRpcHandler?: BunRpcHandlerFactory };
if (typeof newBunWebSocketRpcHandler !== "function") throw new Error("capnweb's Bun build is missing: run this file with bun");

const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("WebSocket only", { status: 426 })),
  websocket: { ...newBunWebSocketRpcHandler(() => new EchoApi()), perMessageDeflate: false },
});
console.log(`READY ${server.port}`);

// readline rather than Bun's `console` iterator, so all servers share one way of reading commands.
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "cpu") {
    const { user, system } = process.cpuUsage();
    console.log(`CPU ${user + system}`);
  }
});
