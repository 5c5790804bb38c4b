/**
 * The core's table of live sessions (#16): sessions in an array by the slot their id names, those with ids
 * from elsewhere in a Map beside it. It must answer as a Map of them would, whatever the order of adds and
 * removes, and make ids that look like the UUIDs they replace.
 */
import { expect, test } from "bun:test";
import fc from "fast-check";
import type { Session } from "../src/server/session.ts";
import { SessionTable } from "../src/server/session-table.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A stand-in session: the table reads only its id. */
const sessionWith = (sessionId: string) => ({ sessionId }) as Session;

test("ids are UUIDs; a freed slot is used again, and the old id no longer finds anything", () => {
  const table = new SessionTable();
  const a = sessionWith(table.newId());
  table.set(a.sessionId, a);
  const b = sessionWith(table.newId());
  table.set(b.sessionId, b);
  expect(a.sessionId).toMatch(UUID);
  expect(b.sessionId).toMatch(UUID);
  expect(table.delete(a.sessionId)).toBe(true);
  expect(table.delete(a.sessionId)).toBe(false);
  const c = sessionWith(table.newId());
  expect(c.sessionId.slice(0, 8)).toBe(a.sessionId.slice(0, 8)); // The same slot...
  table.set(c.sessionId, c);
  expect(table.get(a.sessionId)).toBeUndefined(); // ...but not the same session.
  expect(table.get(c.sessionId)).toBe(c);
  expect([...table.values()]).toEqual([c, b]);
  expect([...table.keys()]).toEqual([c.sessionId, b.sessionId]);
  expect(table.size).toBe(2);
});

test("ids made elsewhere: one naming a free slot takes it, one naming a taken or far slot goes beside", () => {
  const here = new SessionTable();
  const local = sessionWith(here.newId());
  here.set(local.sessionId, local);
  const tail = () => crypto.randomUUID().slice(8);
  const inFreeSlot = sessionWith(here.newId().slice(0, 8) + tail()); // Slot 1, free.
  const inTakenSlot = sessionWith(local.sessionId.slice(0, 8) + tail());
  const far = sessionWith(crypto.randomUUID());
  for (const s of [inFreeSlot, inTakenSlot, far]) here.set(s.sessionId, s);
  const next = sessionWith(here.newId());
  expect(next.sessionId.slice(0, 8)).not.toBe(inFreeSlot.sessionId.slice(0, 8)); // Slot 1 is taken now.
  here.set(next.sessionId, next);
  expect(here.size).toBe(5);
  for (const s of [local, inFreeSlot, inTakenSlot, far, next]) expect(here.get(s.sessionId)).toBe(s);
  expect([...here.values()].slice(0, 3)).toEqual([local, inFreeSlot, next]); // The slots, then those beside.
  for (const s of [inFreeSlot, inTakenSlot, far]) expect(here.delete(s.sessionId)).toBe(true);
  expect([...here.values()]).toEqual([local, next]);
  expect(here.has("not-an-id")).toBe(false);
  expect(here.has("")).toBe(false);
});

test("answers as a Map would over any run of adds, removes and lookups", () => {
  const op = fc.oneof(
    fc.record({ k: fc.constant("new" as const) }),
    fc.record({ k: fc.constant("foreign" as const), id: fc.uuid() }),
    // An id from elsewhere that names the slot a new one would get, or one taken now.
    fc.record({ k: fc.constant("lookalike" as const), pick: fc.nat(), id: fc.uuid() }),
    fc.record({ k: fc.constant("delete" as const), pick: fc.nat() }),
    fc.record({ k: fc.constant("stale" as const), pick: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const table = new SessionTable();
      const model = new Map<string, Session>();
      const gone: string[] = [];
      for (const o of ops) {
        const taken = [...model.keys()];
        const lookalike =
          o.k === "lookalike" && ((o.pick % 2 && taken[o.pick % taken.length]) || table.newId()).slice(0, 8) + o.id.slice(8);
        if (o.k === "new" || (o.k === "foreign" && !model.has(o.id)) || (lookalike && !model.has(lookalike))) {
          const s = sessionWith(o.k === "new" ? table.newId() : lookalike || (o as { id: string }).id);
          expect(model.has(s.sessionId)).toBe(false);
          table.set(s.sessionId, s);
          model.set(s.sessionId, s);
        } else if (o.k === "delete" && model.size) {
          const id = [...model.keys()][o.pick % model.size] as string;
          expect(table.delete(id)).toBe(true);
          model.delete(id);
          gone.push(id);
        } else if (o.k === "stale" && gone.length) {
          expect(table.has(gone[o.pick % gone.length] as string)).toBe(model.has(gone[o.pick % gone.length] as string));
        }
        expect(table.size).toBe(model.size);
      }
      for (const [id, s] of model) expect(table.get(id)).toBe(s);
      expect(new Set(table.values())).toEqual(new Set(model.values()));
      expect([...table.values()].length).toBe(model.size);
    }),
  );
});
