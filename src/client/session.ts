/**
 * What a client keeps from one socket to the next besides the engine's calls: its identity (the id the
 * server assigned and the key that proves it, stored across runs) and its session (the id and the token
 * that resume it). HELLO offers them; WELCOME says which the server kept.
 */
import type { Peer } from "../engine/peer.ts";
import * as FrameType from "../wire/frame-type.ts";
import { encodeFrame, PROTOCOL_VERSION } from "../wire/frames.ts";
import { type Identity, storedIdentity, storeIdentity, uuid } from "./identity.ts";
import type { ClientOptions, Log } from "./options.ts";

export class ClientSession {
  identity: Identity;
  /** Made fresh by each client, kept while the session resumes, replaced when the server starts another. */
  id: string = uuid();
  /** Proves the session on a resume; null before the first WELCOME and after the session is given up. */
  token: string | null = null;
  /** Whether the current connection resumed the previous session. */
  resumed = false;
  /** Set when a refusal made the client give its session up; the next fresh session is a reset. */
  lost = false;

  constructor(opts: ClientOptions) {
    this.identity = opts.clientId ? { clientId: opts.clientId, clientKey: opts.clientKey ?? null } : storedIdentity();
  }

  /** @returns the HELLO frame that opens a socket, asking to resume this session with what `peer` has seen */
  hello(peer: Peer): Uint8Array {
    const { clientId, clientKey } = this.identity;
    return encodeFrame([FrameType.Hello, PROTOCOL_VERSION, clientId, this.id, this.token, peer.lastEvent, peer.settledBelow, clientKey]);
  }

  /** Takes the identity a WELCOME carries, when it is new, and stores it for the next run. */
  adoptIdentity(clientId: string | undefined, clientKey: string | undefined, log: Log): void {
    if (!clientId || !clientKey || (clientId === this.identity.clientId && clientKey === this.identity.clientKey)) return;
    if (clientId !== this.identity.clientId) log?.(`the server assigned client id ${clientId}`);
    this.identity = { clientId, clientKey };
    storeIdentity(this.identity);
  }

  /** Gives the session up: the next connection starts a fresh one, reported as a reset. */
  forget(): void {
    this.token = null;
    this.lost = true;
  }
}
