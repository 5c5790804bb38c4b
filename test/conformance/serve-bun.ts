// The fixture on Bun. Prints "READY <port>" once it listens.
import { fixtureServer } from "./fixture.ts";

const chatter = fixtureServer();
const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req, srv) => chatter.upgrade(req, srv), websocket: chatter.websocket });
console.log(`READY ${server.port}`);
