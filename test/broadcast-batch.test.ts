/**
 * Bun's native publish with broadcasts gathered per tick (src/server/topics.ts, `queue`): a burst to one topic
 * reaches each member as one message, and nothing about what arrives, or in what order, changes.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { z } from "zod";
import { createProc } from "../src/index.ts";
import { decodeFrames, type EventFrame, FrameType } from "../src/wire/frames.ts";
import { rawSocket, startServer, type TestServer, waitFor } from "./helpers.ts";
import { NOTE } from "./procs.ts";

const SHOUT = createProc({ name: "shout", takes: z.string(), returns: z.string() });

let srv: TestServer<unknown> | undefined;
afterEach(async () => {
  await srv?.stop();
  srv = undefined;
});

/** A raw socket (the server's onOpen subscribes it), with the EVENT frames of each message it got kept apart. */
async function member(url: string) {
  const raw = await rawSocket(url);
  const messages: EventFrame[][] = [];
  const onmessage = raw.ws.onmessage;
  raw.ws.onmessage = (ev) => {
    messages.push(decodeFrames(new Uint8Array(ev.data as ArrayBuffer)).filter((f): f is EventFrame => f[0] === FrameType.Event));
    onmessage?.call(raw.ws, ev);
  };
  const inputs = () => messages.flat().map((f) => f[3]);
  return { raw, messages, inputs };
}

describe("broadcasts gathered per tick (Bun)", () => {
  test("a burst to one topic reaches each member as one message, in order", async () => {
    srv = startServer({ onOpen: (conn) => conn.subscribe("room") });
    const all = [await member(srv.url), await member(srv.url)];
    await waitFor(() => srv?.chatter.connections.size === 2);
    for (let i = 0; i < 100; i++) srv.chatter.broadcast("room", NOTE, String(i));
    await waitFor(() => all.every((m) => m.inputs().length === 100));
    for (const m of all) {
      expect(m.messages.filter((frames) => frames.length > 0)).toHaveLength(1);
      expect(m.inputs()).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
    }
  });

  test("a burst past 64 KB is split into several messages, and every broadcast arrives once, in order", async () => {
    srv = startServer({ onOpen: (conn) => conn.subscribe("room") });
    const m = await member(srv.url);
    await waitFor(() => srv?.chatter.connections.size === 1);
    const text = "x".repeat(1000);
    for (let i = 0; i < 300; i++) srv.chatter.broadcast("room", NOTE, `${i}${text}`);
    await waitFor(() => m.inputs().length === 300);
    const sizes = m.messages.filter((frames) => frames.length > 0).map((frames) => frames.length);
    expect(sizes.length).toBeGreaterThanOrEqual(5);
    expect(m.inputs()).toEqual(Array.from({ length: 300 }, (_, i) => `${i}${text}`));
    // Sequence numbers rise by one: nothing skipped, nothing twice.
    const seqs = m.messages.flat().map((f) => f[1]);
    expect(seqs).toEqual(Array.from({ length: 300 }, (_, i) => (seqs[0] as number) + i));
  });

  test("broadcasts alternating between two topics reach each member in order, and only its own topics", async () => {
    srv = startServer();
    const both = await srv.client();
    const onlyB = await srv.client();
    const seen = { both: [] as string[], onlyB: [] as string[] };
    both.on(NOTE, (s) => void seen.both.push(s));
    onlyB.on(NOTE, (s) => void seen.onlyB.push(s));
    for (const [client, topics] of [
      [both, ["a", "b"]],
      [onlyB, ["b"]],
    ] as const) {
      const conn = srv.chatter.find((c) => c.clientId === client.clientId);
      for (const t of topics) conn?.subscribe(t);
    }
    const topic = (i: number) => (i % 3 === 2 ? "b" : "a");
    for (let i = 0; i < 30; i++) srv.chatter.broadcast(topic(i), NOTE, String(i));
    // The client drops an EVENT numbered at or below the last it saw: one out of order would be lost here.
    await waitFor(() => seen.both.length === 30 && seen.onlyB.length === 10);
    await Bun.sleep(50);
    const all = Array.from({ length: 30 }, (_, i) => String(i));
    expect(seen).toEqual({ both: all, onlyB: all.filter((_, i) => topic(i) === "b") });
  });

  test("a member that leaves right after a broadcast still gets it; one that joins right after does not", async () => {
    srv = startServer();
    const leaver = await srv.client();
    const joiner = await srv.client();
    const got = { leaver: [] as string[], joiner: [] as string[] };
    leaver.on(NOTE, (s) => void got.leaver.push(s));
    joiner.on(NOTE, (s) => void got.joiner.push(s));
    const leaving = srv.chatter.find((c) => c.clientId === leaver.clientId);
    const joining = srv.chatter.find((c) => c.clientId === joiner.clientId);
    leaving?.subscribe("room");
    srv.chatter.broadcast("room", NOTE, "before");
    leaving?.unsubscribe("room");
    joining?.subscribe("room");
    srv.chatter.broadcast("room", NOTE, "after");
    await waitFor(() => got.leaver.length === 1 && got.joiner.length === 1);
    await Bun.sleep(50);
    expect(got).toEqual({ leaver: ["before"], joiner: ["after"] });
  });

  test("a handler's broadcasts reach its caller before its answer", async () => {
    srv = startServer({ onOpen: (conn) => conn.subscribe("room") });
    srv.chatter.on(SHOUT, (text) => {
      for (let i = 0; i < 3; i++) srv?.chatter.broadcast("room", NOTE, `${text}${i}`);
      return "done";
    });
    const raw = await rawSocket(srv.url);
    const types: number[] = [];
    raw.ws.addEventListener("message", (ev) => {
      for (const f of decodeFrames(new Uint8Array(ev.data as ArrayBuffer))) types.push(f[0]);
    });
    await waitFor(() => srv?.chatter.connections.size === 1);
    raw.send([FrameType.Call, 1, "shout", "hey", 0, 1]);
    await waitFor(() => types.includes(FrameType.Result));
    expect(types).toEqual([FrameType.Event, FrameType.Event, FrameType.Event, FrameType.Result]);
  });

  test("a socket closed right after a broadcast still gets it first", async () => {
    srv = startServer({ onOpen: (conn) => conn.subscribe("room") });
    const m = await member(srv.url);
    await waitFor(() => srv?.chatter.connections.size === 1);
    srv.chatter.broadcast("room", NOTE, "last words");
    srv.chatter.filter(() => true)[0]?.close();
    await m.raw.closed;
    expect(m.inputs()).toEqual(["last words"]);
  });
});
