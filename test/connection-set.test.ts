/**
 * `server.connections` is a view of the core's sessions, not a Set of its own (#16): it must still behave as
 * a read-only set of the live sessions, in the order they began, ended ones gone and parked ones kept.
 */
import { afterEach, expect, test } from "bun:test";
import type { ServerConnection } from "../src/index.ts";
import { rawSocket, startServer, type TestServer, waitFor } from "./helpers.ts";

let srv: TestServer<unknown>;
afterEach(() => srv?.stop());

test("server.connections holds the live sessions in the order they began, parked ones too, and forgets ended ones", async () => {
  const opened: ServerConnection<unknown>[] = [];
  srv = startServer({ onOpen: (c) => void opened.push(c) });
  const a = await rawSocket(srv.url);
  const b = await rawSocket(srv.url);
  const c = await rawSocket(srv.url);
  const set = srv.chatter.connections;
  expect(set.size).toBe(3);
  expect([...set]).toEqual(opened);
  expect([...set.values()]).toEqual(opened);
  expect([...set.keys()]).toEqual(opened);
  expect([...set.entries()]).toEqual(opened.map((x) => [x, x]));
  const seen: unknown[] = [];
  set.forEach(function (this: unknown, value, again, whole) {
    seen.push([value === again, whole === set, this]);
  }, "ctx");
  expect(seen).toEqual(opened.map(() => [true, true, "ctx"]));
  for (const conn of opened) expect(set.has(conn)).toBe(true);
  expect(set.has({} as ServerConnection<unknown>)).toBe(false);
  expect(set.has(null as unknown as ServerConnection<unknown>)).toBe(false);

  const [first, second, third] = opened as [ServerConnection<unknown>, ServerConnection<unknown>, ServerConnection<unknown>];
  first.close();
  b.ws.close(4000, "dropped"); // Parked: still a live session.
  await waitFor(() => !second.isConnected, 3000, "b to park");
  expect(set.has(first)).toBe(false);
  expect([...set]).toEqual([second, third]);
  expect(srv.chatter.find((x) => x === second)).toBe(second);
  expect(srv.chatter.filter(() => true)).toEqual([second, third]);
  a.ws.close();
  c.ws.close();
});
