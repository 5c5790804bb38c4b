/**
 * A topic that holds most sessions keeps them in an array by slot, not a Set (#16): broadcasts, exclusions,
 * overlaps with other topics, volatile ones, presence and the member list must work as before, on the way
 * up to that form and on the way back to a Set.
 */
import { afterEach, expect, test } from "bun:test";
import { type ChatterServer, createServer, type ServerConnection } from "../src/index.ts";
import { DenseMembers } from "../src/server/member-set.ts";
import { coreOf } from "../src/server/registry.ts";
import { FrameType } from "../src/wire/frames.ts";
import { rawSocket, serveOnNode, startServer, type TestServer, waitFor } from "./helpers.ts";
import { NOTE } from "./procs.ts";

let srv: TestServer<unknown> | undefined;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  srv?.stop();
  srv = undefined;
  for (const f of cleanup.splice(0)) await f();
});

type Raw = Awaited<ReturnType<typeof rawSocket>>;
const events = (raw: Raw) => raw.inbox.filter((f) => f[0] === FrameType.Event).map((f) => f[3]);

test("a topic most sessions are in works the same once dense, and after it is a Set again (Bun, native publish)", async () => {
  srv = startServer({ onOpen: (c) => c.subscribe("all") });
  await bigTopic(srv.chatter, srv.url);
});

test("a topic most sessions are in works the same once dense, and after it is a Set again (Node, subscriber loop)", async () => {
  const chatter = createServer({ onOpen: (c) => c.subscribe("all") });
  const node = await serveOnNode(chatter);
  cleanup.push(node.close);
  await bigTopic(chatter, node.url);
});

async function bigTopic(chatter: ChatterServer<unknown>, url: string): Promise<void> {
  const raws: Raw[] = [];
  for (let i = 0; i < 40; i++) raws.push(await rawSocket(url));
  const index = coreOf(chatter).topics.index;
  expect(index.get("all")).toBeInstanceOf(DenseMembers);
  const conns = raws.map((r) => chatter.find((c) => c.clientId === r.clientId) as ServerConnection<unknown>);
  for (const c of conns.slice(0, 5)) c.subscribe("room");
  expect(await chatter.presence("all")).toBe(40);
  expect((await chatter.members("all")).map((m) => m.sessionId).sort()).toEqual(conns.map((c) => c.sessionId).sort());

  // Overlapping topics: each gets it once; the excluded none.
  await chatter.broadcast(["room", "all"], NOTE, "both", { exclude: [conns[1] as ServerConnection<unknown>] });
  await conns[0]?.broadcast("all", NOTE, "from 0");
  await chatter.broadcast("all", NOTE, "quick", { volatile: true });
  await waitFor(() => raws.every((r, i) => events(r).length === (i === 0 ? 2 : i === 1 ? 2 : 3)), 3000, "the broadcasts");
  expect(events(raws[0] as Raw)).toEqual(["both", "quick"]);
  expect(events(raws[1] as Raw)).toEqual(["from 0", "quick"]);
  expect(events(raws[7] as Raw)).toEqual(["both", "from 0", "quick"]);

  for (const c of conns.slice(0, 35)) c.close();
  expect(index.get("all")).toBeInstanceOf(Set);
  expect(await chatter.presence("all")).toBe(5);
  expect(await chatter.presence("room")).toBe(0);
  await chatter.broadcast("all", NOTE, "last");
  await waitFor(() => raws.slice(35).every((r) => events(r).at(-1) === "last"), 3000, "the last broadcast");
  for (const r of raws) r.ws.close();
}
