/**
 * A topic's members. A small topic keeps them in a Set; a Set costs some 32 bytes a slot and grows fourfold
 * when it fills, so a topic that holds a good share of the server's sessions (a channel everyone is in) keeps
 * them instead in an array by the session's slot in the core's table (session-table.ts), 8 bytes a slot of
 * that table. Sessions without a slot there (ids from another instance) go in a Set beside it.
 */

/** What a member list needs of the core's table of sessions. */
export interface SlotIndex<C> {
  /** @returns the slot this member has in the table, or -1 when it has none */
  slotOf(member: C): number;
  /**
   * @returns the slot this member's id names, or -1: where it was put if it had a slot, even once it is gone
   *   from the table (an ended session leaves its topics after it leaves the table)
   */
  namedSlot(member: C): number;
  /** Slots in the table, taken or free. */
  readonly slotCount: number;
}

/** A topic's members, as topics.ts uses them: a Set, or a `DenseMembers` once the topic is big. */
export type Members<C> = Set<C> | DenseMembers<C>;

/** A Set becomes dense from this many members, if they are a quarter of the table's slots or more. */
const DENSE_FROM = 32;

/** The members of a big topic, in an array by their slot in the core's table. */
export class DenseMembers<C> {
  readonly #slots: SlotIndex<C>;
  /** Members by slot; `undefined` where there is none (assigned, never a hole). */
  readonly #bySlot: (C | undefined)[] = [];
  /** Members that have no slot. */
  #others: Set<C> | null = null;
  #size = 0;

  constructor(slots: SlotIndex<C>, members: Iterable<C>) {
    this.#slots = slots;
    for (const member of members) this.add(member);
  }

  get size(): number {
    return this.#size;
  }

  has(member: C): boolean {
    const slot = this.#slots.namedSlot(member);
    return (slot >= 0 && this.#bySlot[slot] === member) || (this.#others?.has(member) ?? false);
  }

  add(member: C): this {
    if (this.has(member)) return this;
    const slot = this.#slots.slotOf(member);
    if (slot < 0) {
      this.#others ??= new Set();
      this.#others.add(member);
    } else {
      const bySlot = this.#bySlot;
      while (bySlot.length <= slot) bySlot.push(undefined);
      bySlot[slot] = member;
    }
    this.#size++;
    return this;
  }

  delete(member: C): boolean {
    const slot = this.#slots.namedSlot(member);
    if (slot >= 0 && this.#bySlot[slot] === member) this.#bySlot[slot] = undefined;
    else if (!this.#others?.delete(member)) return false;
    this.#size--;
    return true;
  }

  /** The members with a slot, by slot, then the others. */
  *[Symbol.iterator](): Generator<C, undefined, undefined> {
    const bySlot = this.#bySlot;
    for (let i = 0; i < bySlot.length; i++) {
      const member = bySlot[i];
      if (member !== undefined) yield member;
    }
    if (this.#others) yield* this.#others;
  }
}

/**
 * @returns the members kept the cheaper way for their number: dense once a Set would cost more than the array,
 *   a Set again once they are far fewer (well apart, so a topic at the edge does not switch back and forth)
 */
export function resized<C>(members: Members<C>, slots: SlotIndex<C>): Members<C> {
  const n = members.size;
  if (members instanceof Set) return n >= DENSE_FROM && n * 4 >= slots.slotCount ? new DenseMembers(slots, members) : members;
  return n < DENSE_FROM / 2 || n * 16 < slots.slotCount ? new Set(members) : members;
}
