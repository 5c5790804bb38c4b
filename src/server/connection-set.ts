/**
 * `server.connections`: the live sessions' public faces, read from the core's table of sessions as they are asked
 * for. A Set of its own would hold an entry per session (some 32 to 128 bytes each) for what the table holds already.
 */
import { isConnection, type ServerConnection, sessionOf } from "./connection.ts";
import type { SessionTable } from "./session-table.ts";

export class ConnectionSet implements ReadonlySet<ServerConnection> {
  readonly #sessions: SessionTable;

  /** @param sessions - the core's live sessions, by id */
  constructor(sessions: SessionTable) {
    this.#sessions = sessions;
  }

  get size(): number {
    return this.#sessions.size;
  }

  has(value: ServerConnection): boolean {
    if (!isConnection(value)) return false;
    const session = sessionOf(value);
    return this.#sessions.get(session.sessionId) === session;
  }

  // In the table's order (by slot: a new session may take the place of one that ended).
  *values(): SetIterator<ServerConnection> {
    for (const session of this.#sessions.values()) yield session.connection as ServerConnection;
  }

  keys(): SetIterator<ServerConnection> {
    return this.values();
  }

  *entries(): SetIterator<[ServerConnection, ServerConnection]> {
    for (const connection of this.values()) yield [connection, connection];
  }

  [Symbol.iterator](): SetIterator<ServerConnection> {
    return this.values();
  }

  forEach(fn: (value: ServerConnection, again: ServerConnection, set: ReadonlySet<ServerConnection>) => void, thisArg?: unknown): void {
    for (const connection of this.values()) fn.call(thisArg, connection, connection, this);
  }
}
