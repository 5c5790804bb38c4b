/**
 * `onDisconnect` and `onResume` (issue 12, item 3): presence can show "away"
 * the moment a socket drops, and "back" when the session resumes, instead of
 * waiting out the resume window for `onClose`.
 */
import { afterEach, expect, test } from "bun:test";
import { ConnectionState } from "../src/index.ts";
import { startServer, type TestServer, waitFor, waitForState } from "./helpers.ts";
import { tcpProxy } from "./proxy.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
let proxy: Awaited<ReturnType<typeof tcpProxy>> | undefined;
afterEach(() => {
  proxy?.stop();
  srv?.stop();
});

test("a drop runs onDisconnect at once with its code; the resume runs onResume; onClose waits for the end", async () => {
  const events: string[] = [];
  srv = startServer({
    resumeWindow: 5000,
    onOpen: () => void events.push("open"),
    onDisconnect: (c, code) => void events.push(`away ${c.isConnected} ${code}`),
    onResume: (c) => void events.push(`back ${c.isConnected}`),
    onClose: (_c, code) => void events.push(`close ${code}`),
  });
  proxy = await tcpProxy(srv.bun.port as number);
  const client = await srv.client({ url: proxy.url });
  proxy.refuse(true);
  proxy.cutAll();
  await waitFor(() => events.some((e) => e.startsWith("away")), 3000, "onDisconnect");
  proxy.refuse(false);
  await waitForState(client, ConnectionState.Connected);
  await waitFor(() => events.includes("back true"), 3000, "onResume");
  client.close();
  await waitFor(() => events.some((e) => e.startsWith("close")), 3000, "onClose");
  expect(events).toEqual(["open", "away false 1006", "back true", "close 4004"]);
});
