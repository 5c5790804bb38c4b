/**
 * A way past the public API for this repository's own tests and tools: the engine Peer and the connection
 * behind a client, which ChatterClient keeps in #private fields. Not exported from src/index.ts, so it is no
 * part of the package an app can import, and it stays out of the built .d.ts. client.ts registers into this
 * module, never the reverse, so a client is only an `object` key here.
 */
import type { Peer } from "../engine/peer.ts";
import type { Connection } from "./connection.ts";

/** A ChatterClient; typed as a bare object since client.ts imports this module. */
type Client = object;

interface Internals {
  peer: Peer;
  connection: Connection;
}

const internals = new WeakMap<Client, Internals>();

/** Records what runs behind `client`; ChatterClient's constructor calls it. */
export function exposeInternals(client: Client, parts: Internals): void {
  internals.set(client, parts);
}

function of(client: Client): Internals {
  const parts = internals.get(client);
  if (!parts) throw new TypeError("[chatter] not a ChatterClient");
  return parts;
}

/** @returns the engine Peer behind `client` */
export function peerOfClient(client: Client): Peer {
  return of(client).peer;
}

/** @returns whether `client` sent a keepalive PING that its PONG has not answered yet */
export function awaitingPong(client: Client): boolean {
  return of(client).connection.awaitingPong;
}
