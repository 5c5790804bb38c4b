/**
 * A big topic keeps its members in an array by their slot in the core's table of sessions (#16). It must
 * answer as a Set would, for sessions with a slot, sessions without one (ids from another instance), and a
 * session that has left the table already (an ended one leaves its topics after that).
 */
import { expect, test } from "bun:test";
import fc from "fast-check";
import { DenseMembers, resized } from "../src/server/member-set.ts";
import type { Session } from "../src/server/session.ts";
import { SessionTable } from "../src/server/session-table.ts";

const sessionWith = (sessionId: string) => ({ sessionId }) as Session;

test("answers as a Set would over any run of joins, leaves, new and ended sessions", () => {
  const op = fc.oneof(
    fc.record({ k: fc.constant("open" as const), foreign: fc.boolean() }),
    fc.record({ k: fc.constant("join" as const), pick: fc.nat() }),
    fc.record({ k: fc.constant("leave" as const), pick: fc.nat() }),
    fc.record({ k: fc.constant("end" as const), pick: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const table = new SessionTable();
      const members = new DenseMembers(table, []);
      const model = new Set<Session>();
      const live: Session[] = [];
      const ended: Session[] = [];
      for (const o of ops) {
        if (o.k === "open") {
          const s = sessionWith(o.foreign ? crypto.randomUUID() : table.newId());
          table.set(s.sessionId, s);
          live.push(s);
          continue;
        }
        const pool = o.k === "leave" ? [...live, ...ended] : live;
        const s = pool[o.pick % Math.max(1, pool.length)];
        if (!s) continue;
        if (o.k === "join") {
          members.add(s);
          model.add(s);
        } else if (o.k === "leave") expect(members.delete(s)).toBe(model.delete(s));
        else {
          // Ended: out of the table first, out of its topics after, as core.endSession does.
          table.delete(s.sessionId);
          live.splice(live.indexOf(s), 1);
          expect(members.delete(s)).toBe(model.delete(s));
          ended.push(s);
        }
        expect(members.size).toBe(model.size);
      }
      for (const s of [...live, ...ended]) expect(members.has(s)).toBe(model.has(s));
      expect(new Set(members)).toEqual(model);
      expect([...members].length).toBe(model.size);
    }),
  );
});

test("a topic turns dense once its members are a quarter of the table's slots (32 at least), and a Set again when few", () => {
  const table = new SessionTable();
  const sessions = Array.from({ length: 100 }, () => {
    const s = sessionWith(table.newId());
    table.set(s.sessionId, s);
    return s;
  });
  let members: Set<Session> | DenseMembers<Session> = new Set<Session>();
  for (const s of sessions.slice(0, 24)) members = resized(members.add(s), table);
  expect(members).toBeInstanceOf(Set); // 24 of 100 slots.
  for (const s of sessions.slice(24, 40)) members = resized(members.add(s), table);
  expect(members).toBeInstanceOf(DenseMembers);
  expect(new Set(members)).toEqual(new Set(sessions.slice(0, 40)));
  for (const s of sessions.slice(0, 30)) {
    members.delete(s);
    members = resized(members, table);
  }
  expect(members).toBeInstanceOf(Set); // 10 left: fewer than one in sixteen slots.
  expect(new Set(members)).toEqual(new Set(sessions.slice(30, 40)));
});
