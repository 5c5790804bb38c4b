// A small multi-room chat: log in by cookie, join rooms, talk, see who is typing and who is online or away.
// Run it with `npm run demo:chat`, then open http://localhost:3000/login?name=ann, and
// http://localhost:3000/login?name=bob in a private window (each window keeps its own cookie).
import { ChatterError, createServer, type ServerConnection } from "chatter";
import { JOIN, MESSAGE, type Message, type Person, POST, PRESENCE, SOMEONE_TYPING, TYPING } from "./procedures";

/** What the server keeps per connection: who it is, and the room it is in. */
interface User {
  name: string;
  room: string | null;
}
type Connection = ServerConnection<User>;

const NAME = /^[A-Za-z0-9_-]{1,20}$/;
const BANNED = new Set(["mallory"]);
const KEEP = 50; // messages kept per room, sent to whoever joins
const history = new Map<string, Message[]>();
/** Each room's connections, for its presence list. */
const members = new Map<string, Set<Connection>>();
/** Calls and milliseconds per procedure, counted by the middleware below; served at /stats. */
const stats = new Map<string, { calls: number; ms: number }>();

const chatter = createServer<User>({
  // Runs during the upgrade: no valid cookie, no socket (the page's onError shows why).
  getConnectionData: ({ cookies }): User => {
    const name = cookies.user;
    if (!name || !NAME.test(name)) throw new ChatterError("UNAUTHORIZED", "log in first");
    return { name, room: null };
  },
  // "away" the moment a socket drops, "online" again when the session resumes, gone when it ends.
  onDisconnect: (connection) => showPresence(connection.data.room),
  onResume: (connection) => showPresence(connection.data.room),
  onClose: (connection) => leave(connection),
  // Callers see our own ChatterErrors as thrown; anything unexpected is logged here and hidden from them.
  formatError: (error, ctx) => {
    if (error instanceof ChatterError) return error;
    console.error(`[chat] "${ctx.proc}" failed:`, error);
    return new ChatterError("INTERNAL", "something went wrong");
  },
});

// Around every call: refuse banned users, then count and time each procedure.
chatter.use(async (input, connection, ctx, next) => {
  if (BANNED.has(connection.data.name)) throw new ChatterError("FORBIDDEN", `${connection.data.name} may not chat here`);
  const started = performance.now();
  try {
    return await next(input);
  } finally {
    const entry = stats.get(ctx.proc) ?? { calls: 0, ms: 0 };
    stats.set(ctx.proc, entry);
    entry.calls++;
    entry.ms += performance.now() - started;
  }
});

const topicOf = (room: string) => `room:${room}`;

function mustBeIn(connection: Connection, room: string): void {
  if (!connection.isSubscribed(topicOf(room))) throw new ChatterError("FORBIDDEN", `join ${room} first`);
}

chatter.on(JOIN, (room, connection) => {
  leave(connection);
  connection.data.room = room;
  connection.subscribe(topicOf(room));
  const inRoom = members.get(room) ?? new Set();
  members.set(room, inRoom.add(connection));
  showPresence(room);
  return { you: connection.data.name, messages: history.get(room) ?? [] };
});

chatter.on(POST, ({ room, text }, connection) => {
  mustBeIn(connection, room);
  const message: Message = { room, from: connection.data.name, text, at: new Date() };
  const kept = history.get(room) ?? [];
  kept.push(message);
  history.set(room, kept.slice(-KEEP));
  chatter.broadcast(topicOf(room), MESSAGE, message); // the sender too: one way to render every message
});

chatter.on(TYPING, (room, connection) => {
  mustBeIn(connection, room);
  // Volatile: a typing hint is not worth replaying after a drop, nor queueing behind a slow socket.
  connection.broadcast(topicOf(room), SOMEONE_TYPING, { room, name: connection.data.name }, { volatile: true });
});

/** Takes a connection out of its room, if it is in one. */
function leave(connection: Connection): void {
  const room = connection.data.room;
  if (room === null) return;
  connection.data.room = null;
  if (connection.isSubscribed(topicOf(room))) connection.unsubscribe(topicOf(room));
  const inRoom = members.get(room);
  inRoom?.delete(connection);
  if (inRoom?.size === 0) members.delete(room);
  showPresence(room);
}

/** Tells a room who is in it: online if any of a person's connections has a socket now, else away. */
function showPresence(room: string | null): void {
  if (room === null) return;
  const people = new Map<string, Person["state"]>();
  for (const c of members.get(room) ?? []) {
    if (people.get(c.data.name) !== "online") people.set(c.data.name, c.isConnected ? "online" : "away");
  }
  const list = [...people].map(([name, state]) => ({ name, state })).sort((a, b) => a.name.localeCompare(b.name));
  chatter.broadcast(topicOf(room), PRESENCE, { room, people: list });
}

// The page's script is bundled for the browser once, at start-up.
const built = await Bun.build({ entrypoints: [`${import.meta.dir}/page.ts`], target: "browser", minify: true });
if (!built.success) throw new AggregateError(built.logs, "could not bundle page.ts");
const script = await built.outputs[0]!.text();
const html = await Bun.file(`${import.meta.dir}/index.html`).text();

const server = Bun.serve({
  port: Number(process.env.PORT ?? 3000),
  fetch(req, server) {
    const url = new URL(req.url);
    if (req.headers.get("upgrade") !== "websocket") {
      if (url.pathname === "/") return new Response(html, { headers: { "Content-Type": "text/html; charset=utf-8" } });
      if (url.pathname === "/page.js") return new Response(script, { headers: { "Content-Type": "text/javascript" } });
      if (url.pathname === "/login") return login(url.searchParams.get("name") ?? "");
      if (url.pathname === "/logout") return redirect("user=; Path=/; Max-Age=0");
      if (url.pathname === "/stats") return Response.json(Object.fromEntries(stats));
    }
    return chatter.upgrade(req, server);
  },
  websocket: chatter.websocket,
});

/** GET /login?name=ann: sets the cookie that getConnectionData reads, and goes back to the chat. */
function login(name: string): Response {
  if (!NAME.test(name)) return new Response("a name is 1 to 20 letters, digits, _ or -\n", { status: 400 });
  return redirect(`user=${name}; Path=/; HttpOnly; SameSite=Lax`);
}

function redirect(cookie: string): Response {
  return new Response(null, { status: 303, headers: { Location: "/", "Set-Cookie": cookie } });
}

console.log(`Chatter chat listening on http://localhost:${server.port}`);
