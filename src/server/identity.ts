/**
 * Ids a client proves instead of claims. A client id is public (apps log it,
 * `callClient` takes it), so knowing one must not be enough to receive the
 * calls meant for it. The server signs every client id it hands out; the
 * client keeps the signature beside the id and shows it in HELLO. An id
 * without a valid signature is replaced by a fresh one.
 */
// Pure JS, so the server core stays free of node: imports (Deno, bundlers) and HMAC stays synchronous.
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

const encoder = new TextEncoder();

const ID_PATTERN = /^[\w-]{1,64}$/;

export class ClientIdentity {
  readonly #key: Uint8Array;

  /** @param secret - the signing key; every instance of a cluster needs the same one. Random when omitted. */
  constructor(secret?: string) {
    if (secret === undefined) {
      this.#key = crypto.getRandomValues(new Uint8Array(32));
      return;
    }
    // Every client is handed a valid id and key, so a short secret could be found by guessing offline.
    this.#key = encoder.encode(secret);
    if (this.#key.byteLength < 32) {
      throw new TypeError("[chatter] createServer: `secret` must be at least 32 bytes, and random (e.g. 32 random bytes in base64)");
    }
  }

  /** @returns the key that proves `clientId`, base64url */
  sign(clientId: string): string {
    return base64url(hmac(sha256, this.#key, encoder.encode(`chatter client id\0${clientId}`)));
  }

  /**
   * A session's resume token, made from its id rather than kept beside it: one string less per session. Only
   * this key can make it, and the id is the server's own random one, so it is as hard to guess as a random token.
   * @returns the token that resumes session `sessionId`, base64url
   */
  sessionToken(sessionId: string): string {
    return base64url(hmac(sha256, this.#key, encoder.encode(`chatter session token\0${sessionId}`)));
  }

  /** @returns whether `key` proves `clientId` */
  verify(clientId: string, key: unknown): boolean {
    return typeof key === "string" && ID_PATTERN.test(clientId) && sameSecret(this.sign(clientId), key);
  }
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** Compares in time that does not depend on where the strings differ. */
export function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
