/**
 * The few ways tests reach inside the server: the core behind a server, a
 * connection's session, socket and engine. None of this is public API; tests
 * use it to stage faults (a socket that closes, a frame that is dropped).
 */
import type { Peer } from "../src/engine/peer.ts";
import type { AdapterHost } from "../src/server/adapter.ts";
import type { BunSocketLike } from "../src/server/bun.ts";
import { type ServerConnection, sessionOf } from "../src/server/connection.ts";
import type { ServerCore } from "../src/server/core.ts";
import type { ChatterServer } from "../src/server/index.ts";
import { coreOf } from "../src/server/registry.ts";

/** @returns the core behind a server */
export function coreOfServer(chatter: ChatterServer<never> | ChatterServer<unknown>): ServerCore {
  return coreOf(chatter);
}

/** @returns the host the server's adapter reports to (its methods may be wrapped to watch events) */
export function hostOfServer(chatter: ChatterServer<never> | ChatterServer<unknown>): AdapterHost<unknown> {
  const host = coreOf(chatter).adapterHost;
  if (!host) throw new Error("the server is not served by an adapter yet");
  return host;
}

/** @returns the engine of a connection */
export function peerOf(conn: ServerConnection<never> | ServerConnection<unknown>): Peer {
  return sessionOf(conn as ServerConnection<unknown>).peer;
}

/** @returns the Bun socket serving a connection now, or null */
export function bunSocketOf(conn: ServerConnection<never> | ServerConnection<unknown>): BunSocketLike | null {
  return (sessionOf(conn as ServerConnection<unknown>).state?.socket as BunSocketLike | undefined) ?? null;
}

/** Closes the socket serving a connection, as a network drop would (the session may resume), on any runtime. */
export function dropSocket(conn: ServerConnection<never> | ServerConnection<unknown>, code: number, reason: string): void {
  const session = sessionOf(conn as ServerConnection<unknown>);
  if (session.state) (session.host as ServerCore).closeSocket(session.state, code, reason);
}

/** @returns the bytes the runtime holds for a connection's socket, on any runtime (0 when it has none) */
export function bufferedOf(conn: ServerConnection<never> | ServerConnection<unknown>): number {
  const session = sessionOf(conn as ServerConnection<unknown>);
  return session.state ? (session.host as ServerCore).buffered(session.state) : 0;
}
