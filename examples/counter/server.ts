// The seed's live counter server, plus a small web page for people to click.
// Run it with `npm run demo`, then open http://localhost:3000 in two tabs.
import { createServer } from "chatter";
import { GET_COUNT, UPDATE_COUNT } from "./procedures";

const chatter = createServer({
  onOpen: (connection) => {
    // Subscribe all new connections to the counter topic.
    connection.subscribe("counter");
  },
});

// The current value lives in memory on the server.
let currentValue = 0;

chatter.on(GET_COUNT, () => {
  return currentValue;
});

chatter.on(UPDATE_COUNT, (amount, connection) => {
  currentValue += amount;
  // Tell every other subscriber; the caller gets the new value as its result.
  connection.broadcast("counter", UPDATE_COUNT, amount);
  return currentValue;
});

// The page's script is bundled for the browser once, at start-up.
const built = await Bun.build({ entrypoints: [`${import.meta.dir}/page.ts`], target: "browser", minify: true });
if (!built.success) throw new AggregateError(built.logs, "could not bundle the demo page");
const script = await built.outputs[0]!.text();
const html = await Bun.file(`${import.meta.dir}/index.html`).text();

const port = Number(process.env.PORT ?? 3000);
const server = Bun.serve({
  port,
  fetch(req, server) {
    const { pathname } = new URL(req.url);
    if (req.headers.get("upgrade") !== "websocket") {
      if (pathname === "/") return new Response(html, { headers: { "Content-Type": "text/html; charset=utf-8" } });
      if (pathname === "/page.js") return new Response(script, { headers: { "Content-Type": "text/javascript" } });
    }
    // Upgrade to a websocket connection.
    return chatter.upgrade(req, server);
  },
  // Chatter handles the websockets
  websocket: chatter.websocket,
});

console.log(`Chatter server listening on http://localhost:${server.port}`);
