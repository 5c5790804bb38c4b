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

// The pages' scripts are bundled for the browser once, at start-up.
async function bundle(entry: string): Promise<string> {
  const built = await Bun.build({
    entrypoints: [`${import.meta.dir}/${entry}`],
    target: "browser",
    minify: true,
    define: { "process.env.NODE_ENV": JSON.stringify("production") },
  });
  if (!built.success) throw new AggregateError(built.logs, `could not bundle ${entry}`);
  return built.outputs[0]!.text();
}
const [script, reactScript] = await Promise.all([bundle("page.ts"), bundle("react.tsx")]);
const html = await Bun.file(`${import.meta.dir}/index.html`).text();
// The React page is the same page with a root for React in place of the plain markup.
const reactHtml = html.replace(/<main>[\s\S]*<\/main>/, '<div id="root"></div>').replace("/page.js", "/react.js");

const port = Number(process.env.PORT ?? 3000);
const server = Bun.serve({
  port,
  fetch(req, server) {
    const { pathname } = new URL(req.url);
    if (req.headers.get("upgrade") !== "websocket") {
      if (pathname === "/") return new Response(html, { headers: { "Content-Type": "text/html; charset=utf-8" } });
      if (pathname === "/page.js") return new Response(script, { headers: { "Content-Type": "text/javascript" } });
      if (pathname === "/react") return new Response(reactHtml, { headers: { "Content-Type": "text/html; charset=utf-8" } });
      if (pathname === "/react.js") return new Response(reactScript, { headers: { "Content-Type": "text/javascript" } });
    }
    // Upgrade to a websocket connection.
    return chatter.upgrade(req, server);
  },
  // Chatter handles the websockets
  websocket: chatter.websocket,
});

console.log(`Chatter server listening on http://localhost:${server.port}`);
