/**
 * `server.connections`: the live sessions' public faces, read from the core's map of sessions as they are asked
 * for. A Set of its own would hold an entry per session (some 50 bytes each) for what that map holds already.
 */
import { isConnection, type ServerConnection, sessionOf } from "./connection.ts";
import type { Session } from "./session.ts";

export class ConnectionSet implements ReadonlySet<ServerConnection> {
  readonly #sessions: ReadonlyMap<string, Session>;

  /** @param sessions - the core's live sessions, by id */
  constructor(sessions: ReadonlyMap<string, Session>) {
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

  // In the order the sessions began, as a Set of them would have it.
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
