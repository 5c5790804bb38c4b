/**
 * The server's live sessions by id. A Map costs some 40 bytes a slot and grows fourfold when it fills (19,000
 * sessions sit in 65,536 slots, 2.6 MB), so the sessions are kept in an array instead, 8 bytes a slot, grown
 * as arrays grow. An id this server makes names its session's slot in its first eight hex digits (masked with
 * a random number, so the ids do not show how many sessions there are), and a lookup checks that the session in
 * that slot has that very id. A session whose id was made elsewhere (one that moved here from another instance
 * of a cluster) takes the slot its id names if that is free and no further than the array's end, else it goes
 * into a Map beside the array.
 */
import type { SlotIndex } from "./member-set.ts";
import type { Session } from "./session.ts";

/** A slot's number is written in this many hex digits at the head of the id. */
const SLOT_DIGITS = 8;

export class SessionTable implements SlotIndex<Session> {
  /** Sessions by slot; `undefined` for a free one (assigned, never a hole, so the array stays compact). */
  readonly #slots: (Session | undefined)[] = [];
  /** Slots freed, to be used again; may hold a few that were taken since (checked when popped). */
  #free: number[] = [];
  /** Sessions whose id names a slot this table cannot give them. */
  readonly #elsewhere = new Map<string, Session>();
  /** Hides the slot numbers in the ids. */
  readonly #mask = crypto.getRandomValues(new Uint32Array(1))[0] as number;
  #size = 0;

  /** How many sessions are live. */
  get size(): number {
    return this.#size;
  }

  /**
   * @returns an id for a new session of this server: a random UUID whose first eight hex digits name a free
   *   slot. It stays free until `set`, so make the session and set it before another id is asked for.
   */
  newId(): string {
    const slots = this.#slots;
    let slot = this.#free.pop();
    while (slot !== undefined && (slot >= slots.length || slots[slot] !== undefined)) slot = this.#free.pop();
    slot ??= slots.length;
    const head = ((slot ^ this.#mask) >>> 0).toString(16).padStart(SLOT_DIGITS, "0");
    // Joined, not added: `+` makes a rope, and its cell stays 16 bytes bigger once flattened, for the session's life.
    return [head, crypto.randomUUID().slice(SLOT_DIGITS)].join("");
  }

  /** @returns the session with this id, if it is live here */
  get(id: string): Session | undefined {
    const session = this.#slots[this.#slotOf(id)];
    return session !== undefined && session.sessionId === id ? session : this.#elsewhere.get(id);
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  /** Adds a session under its id (not one live here already). */
  set(id: string, session: Session): void {
    const slots = this.#slots;
    const slot = this.#slotOf(id);
    if (slot >= 0 && slot <= slots.length && slots[slot] === undefined) slots[slot] = session;
    else this.#elsewhere.set(id, session);
    this.#size++;
  }

  /** Removes the session with this id; @returns whether it was here */
  delete(id: string): boolean {
    const slots = this.#slots;
    const slot = this.#slotOf(id);
    if (slots[slot]?.sessionId === id) {
      slots[slot] = undefined;
      this.#free.push(slot);
      // A slot freed and taken by an id from elsewhere may be pushed again: rebuild the list before it grows past the array.
      if (this.#free.length > slots.length) this.#free = slots.flatMap((s, i) => (s === undefined ? [i] : []));
    } else if (!this.#elsewhere.delete(id)) return false;
    this.#size--;
    return true;
  }

  /** The live sessions: those in slots, by slot, then the others, in the order they came. */
  *values(): Generator<Session, undefined, undefined> {
    const slots = this.#slots;
    for (let i = 0; i < slots.length; i++) {
      const session = slots[i];
      if (session !== undefined) yield session;
    }
    yield* this.#elsewhere.values();
  }

  /** The live sessions' ids, in the order of `values`. */
  *keys(): Generator<string, undefined, undefined> {
    for (const session of this.values()) yield session.sessionId;
  }

  /** @returns the slot this session has here, or -1 when it has none (for a topic's members: member-set.ts) */
  slotOf(session: Session): number {
    const slot = this.#slotOf(session.sessionId);
    return this.#slots[slot] === session ? slot : -1;
  }

  /** @returns the slot a session's id names, or -1: where it is, or was, if it had a slot */
  namedSlot(session: Session): number {
    return this.#slotOf(session.sessionId);
  }

  /** Slots, taken or free. */
  get slotCount(): number {
    return this.#slots.length;
  }

  /** @returns the slot an id names, or -1 when it names none */
  #slotOf(id: string): number {
    // Read digit by digit: no substring to make on every lookup (a broadcast to a big topic makes many).
    if (id.length <= SLOT_DIGITS) return -1;
    let head = 0;
    for (let i = 0; i < SLOT_DIGITS; i++) {
      const c = id.charCodeAt(i);
      const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (digit < 0) return -1;
      head = head * 16 + digit;
    }
    return (head ^ this.#mask) >>> 0;
  }
}
