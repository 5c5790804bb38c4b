/**
 * Chatter in the chaos scenario: the procedures both ends import, and the
 * client side of `System`. Instances run chatter-instance.ts under Bun.
 */
import { z } from "zod";
import { ChatterError, createClient, createProc } from "../../src/index.ts";
import { HOME_DIED, type System } from "./scenario.ts";

export const TOPIC = "chaos";
/** Subscribes the calling session to TOPIC. */
export const SUBSCRIBE = createProc({ name: "subscribe" });
/** A client-to-server call: the handler records `key`, takes `slowMs`, and answers `answerFor(key)`. */
export const WORK = createProc({ name: "work", takes: z.object({ key: z.string(), slowMs: z.number() }), returns: z.string() });
/** What every instance broadcasts on TOPIC. */
export const EVENT = createProc({ name: "event", takes: z.object({ origin: z.number(), n: z.number() }) });
/** A server-to-client call: the client records the key and answers `answerFor(key)`. */
export const ASK = createProc({ name: "ask", takes: z.string(), returns: z.string() });

export const chatterSystem: System = {
  name: "chatter",
  instanceCommand: async () => [process.execPath, `${import.meta.dir}/chatter-instance.ts`],
  async connect(url, hooks) {
    const client = createClient({ url, reconnect: { minDelay: 20, maxDelay: 200 }, connectTimeout: 2000 });
    client.on(EVENT, (event) => hooks.onEvent(event));
    client.on(ASK, (key) => hooks.onServerCall(key));
    client.onReset(() => hooks.onReset());
    let subscribed: () => void = () => {};
    const first = new Promise<void>((resolve) => {
      subscribed = resolve;
    });
    // Every fresh session (the first, and after each reset) joins the topic before queued calls go out.
    client.onSession(async (c) => {
      await c.call(SUBSCRIBE);
      subscribed();
    });
    await first;
    return {
      call: (key, slowMs, timeout) => client.call(WORK, { key, slowMs }, { timeout }),
      close: () => client.close(),
    };
  },
  codeOf(error) {
    if (!(error instanceof ChatterError)) return `THROWN ${String(error)}`;
    // The failure WELCOME's callsLost gives a call that was in flight when its session's instance died.
    return error.code === "DISCONNECTED" && error.message.includes("instance holding the session stopped") ? HOME_DIED : error.code;
  },
};
