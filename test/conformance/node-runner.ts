// The suite under real Node 20, with WebSocket from `ws`. Targets come as JSON in CONFORMANCE_TARGETS.
import { describe, test } from "node:test";
import WebSocket from "ws";
import type { WebSocketConstructor } from "../../src/index.ts";
import { conformance } from "./suite.ts";

const targets = JSON.parse(process.env.CONFORMANCE_TARGETS ?? "[]") as { name: string; url: string }[];
for (const { name, url } of targets) {
  describe(`node client -> ${name} server`, () =>
    conformance({ describe, test }, { url, WebSocket: WebSocket as unknown as WebSocketConstructor }));
}
