// runtime: bun
/**
 * tRPC 11 for the stream row: a subscription whose procedure is an async
 * generator, served by tRPC's own WebSocket adapter (applyWSSHandler) on a `ws`
 * WebSocketServer, as tRPC documents it (trpc.io/docs/server/subscriptions).
 * Out of the box: JSON text frames, one per item, the input checked with zod,
 * and no flow control (the adapter pulls the generator as fast as it can send).
 * Follows the bench system contract (bench/commands.ts).
 */
import { initTRPC } from "@trpc/server";
import { applyWSSHandler } from "@trpc/server/adapters/ws";
import { WebSocketServer } from "ws";
import { z } from "zod";
import { serveCommands } from "../../commands.ts";

const t = initTRPC.create();
const router = t.router({
  tokens: t.procedure.input(z.object({ n: z.number() })).subscription(async function* ({ input }) {
    for (let i = 0; i < input.n; i++) yield { i, text: "token" };
  }),
});
export type Router = typeof router;

const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: false });
applyWSSHandler({ wss, router });
wss.on("listening", () => serveCommands((wss.address() as { port: number }).port));
