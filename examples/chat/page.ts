// The chat page: joins the room named in the URL's hash, shows its messages, who is there and who is typing.
import { type ChatterError, createClient } from "chatter";
import { JOIN, MESSAGE, type Message, type Person, POST, PRESENCE, SOMEONE_TYPING, TYPING } from "./procedures";

const client = createClient({ url: "/" }); // relative: the page's own server, ws:// or wss:// to match
// A debugging handle: try `chatClient.state` in the console. The browser test uses it too.
Object.assign(window, { chatClient: client });

const el = (id: string) => document.querySelector<HTMLElement>(`[data-testid="${id}"]`)!;
const messagesEl = el("messages");
const presenceEl = el("presence");
const typingEl = el("typing");
const errorEl = el("error");
const stateEl = el("state");
const textEl = el("text") as HTMLInputElement;
const roomOfHash = () => decodeURIComponent(location.hash.slice(1)) || "general";
let room = roomOfHash();
/** Who is typing in the room, each with the timer that forgets them. */
const typing = new Map<string, ReturnType<typeof setTimeout>>();

function showState() {
  stateEl.textContent = client.state;
  stateEl.dataset.state = client.state;
}
showState();
client.onStateChange(showState);

// Refusals (no cookie: UNAUTHORIZED) and failed session setups land here. UNAUTHORIZED stops the client.
function showError(err: ChatterError) {
  errorEl.textContent = `${err.code}: ${err.message}`;
  errorEl.hidden = false;
}
client.onError(showError);

// A fresh session has joined no room: join ours, first thing, before any call queued meanwhile goes out.
client.onSession(async (c) => showRoom(await c.call(JOIN, room)));

window.addEventListener("hashchange", () => {
  room = roomOfHash();
  client.call(JOIN, room).then(showRoom, showError);
});

function showRoom({ you, messages }: { you: string; messages: Message[] }) {
  el("you").textContent = you && `you are ${you}`;
  el("room").textContent = `#${room}`;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === `#${room}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  messagesEl.replaceChildren();
  for (const message of messages) addMessage(message);
  for (const name of typing.keys()) stopTyping(name);
}

function addMessage({ from, text, at }: Message) {
  const li = document.createElement("li");
  li.dataset.testid = "message";
  const time = document.createElement("time");
  time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const name = document.createElement("b");
  name.textContent = `${from}: `;
  li.append(time, name, text);
  messagesEl.append(li);
  li.scrollIntoView({ block: "end" });
}

client.on(MESSAGE, (message) => {
  if (message.room !== room) return;
  addMessage(message);
  stopTyping(message.from);
});

client.on(PRESENCE, ({ room: where, people }) => {
  if (where === room) presenceEl.replaceChildren(...people.map(personItem));
});

function personItem({ name, state }: Person) {
  const li = document.createElement("li");
  Object.assign(li.dataset, { testid: "person", name, state });
  li.textContent = state === "online" ? name : `${name} (away)`;
  return li;
}

client.on(SOMEONE_TYPING, ({ room: where, name }) => {
  if (where !== room) return;
  clearTimeout(typing.get(name));
  typing.set(
    name,
    setTimeout(() => stopTyping(name), 3000),
  );
  showTyping();
});

function stopTyping(name: string) {
  clearTimeout(typing.get(name));
  if (typing.delete(name)) showTyping();
}

function showTyping() {
  const names = [...typing.keys()];
  typingEl.textContent = names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

// Tell the room we are typing, at most every 1.5 s, and only while connected: a stale hint is worth nothing.
let lastTyping = Number.NEGATIVE_INFINITY;
textEl.addEventListener("input", () => {
  if (!client.isConnected || performance.now() - lastTyping < 1500) return;
  lastTyping = performance.now();
  client.call(TYPING, room).catch(showError);
});

el("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = textEl.value;
  if (!text.trim()) return;
  textEl.value = "";
  lastTyping = Number.NEGATIVE_INFINITY;
  await client.call(POST, { room, text }).catch(showError);
});
