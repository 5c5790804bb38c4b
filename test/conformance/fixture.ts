/**
 * The conformance fixture: one Chatter server, the same on every adapter,
 * whose procedures let a client in any runtime drive and observe it.
 * `tag` comes from the upgrade URL through getConnectionData.
 */
import { ChatterError, createServer } from "../../src/index.ts";
import { dropSocket } from "../internals.ts";
import {
  ADD,
  BROADCAST,
  CALL_ME,
  COUNT_TAG,
  DROP,
  ECHO,
  ENDLESS,
  FAIL,
  FINISHED,
  HOOKS,
  NOTE,
  READ_ME,
  RUNS,
  STREAM_FAIL,
  SUBSCRIBE,
  TICKS,
  UPPER,
  WHOAMI,
  WORK,
} from "./procs.ts";

export function fixtureServer() {
  const hooks: string[] = [];
  const runs = new Map<string, number>();
  const finished = new Set<string>();
  const chatter = createServer({
    getConnectionData: (info) => {
      const tag = info.url.searchParams.get("tag");
      if (tag === "deny") throw new Error("denied");
      return { tag };
    },
    onOpen: (c) => void hooks.push(`open ${c.data.tag}`),
    onClose: (c, code) => void hooks.push(`close ${c.data.tag} ${code}`),
    maxMessageBytes: 64 * 1024,
    rateLimit: false,
    onError: () => {},
  });
  chatter.on(ADD, ({ a, b }) => a + b);
  chatter.on(FAIL, (message) => {
    throw new ChatterError("FORBIDDEN", message);
  });
  chatter.on(ECHO, (x) => x);
  chatter.on(WORK, async ({ key, ms }) => {
    runs.set(key, (runs.get(key) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, ms));
    return `done ${key}`;
  });
  chatter.on(RUNS, (key) => runs.get(key) ?? 0);
  chatter.on(WHOAMI, (_i, c) => ({ clientId: c.clientId, sessionId: c.sessionId, tag: c.data.tag }));
  chatter.on(SUBSCRIBE, (topic, c) => c.subscribe(topic));
  chatter.on(BROADCAST, ({ topics, text, fromSelf, excludeTags, delay }, c) => {
    const exclude = chatter.filter((o) => excludeTags?.includes(o.data.tag ?? "") ?? false);
    const send = () => (fromSelf ? c.broadcast(topics, NOTE, text, { exclude }) : chatter.broadcast(topics, NOTE, text, { exclude }));
    if (delay) setTimeout(send, delay);
    else send();
  });
  chatter.on(CALL_ME, (input, c) => c.call(ECHO, input));
  chatter.on(COUNT_TAG, (tag) => ({
    found: chatter.find((c) => c.data.tag === tag) !== undefined,
    count: chatter.filter((c) => c.data.tag === tag).length,
  }));
  chatter.on(HOOKS, (tag) => hooks.filter((h) => h.split(" ")[1] === tag));
  // Closes the caller's socket after answering, as a network drop would (resumable).
  chatter.on(DROP, (_i, c) => void setTimeout(() => dropSocket(c, 4010, "dropped by the test"), 5));
  chatter.on(TICKS, async function* (n) {
    for (let i = 0; i < n; i++) yield i;
  });
  chatter.on(ENDLESS, async function* (key) {
    try {
      for (let i = 0; ; i++) yield i;
    } finally {
      finished.add(key);
    }
  });
  chatter.on(FINISHED, (key) => finished.has(key));
  chatter.on(STREAM_FAIL, async function* (message) {
    yield 1;
    throw new ChatterError("FORBIDDEN", message);
  });
  chatter.on(READ_ME, async (text, c) => {
    const words: string[] = [];
    // A short wait for each item: a client whose generator stalls fails the test soon, by name.
    for await (const word of c.stream(UPPER, text, { timeout: 3000 })) words.push(word);
    return words;
  });
  return chatter;
}
