// The fixture on Node through chatter/node. Prints "READY <port>" once it listens.
import { createServer } from "node:http";
import { attach } from "../../src/node.ts";
import { fixtureServer } from "./fixture.ts";

const http = createServer((_req, res) => res.writeHead(426).end("WebSocket only"));
attach(fixtureServer(), http, { path: "/chatter" });
http.listen(0, "127.0.0.1", () => {
  const address = http.address();
  console.log(`READY ${typeof address === "object" && address ? address.port : 0}`);
});
