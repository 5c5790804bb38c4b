/** Client identity: a persistent `clientId` and a per-instance `sessionId`. */

const STORAGE_KEY = "chatter:clientId";

/** @returns a random UUID, even where `crypto.randomUUID` is missing (plain-http pages) */
export function uuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] as number) & 0x0f) | 0x40;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const KEY_STORAGE = "chatter:clientKey";

/** A client id and the key the server signed it with (null until a server has). */
export interface Identity {
  clientId: string;
  clientKey: string | null;
}

function storage(): Storage | undefined {
  try {
    return (globalThis as { localStorage?: Storage }).localStorage;
  } catch {
    // Storage can throw (privacy modes, Node without a storage file).
    return undefined;
  }
}

/**
 * The id and key stored in `localStorage` where there is one, so a browser
 * keeps them across reloads; elsewhere a fresh id per `createClient`. An id without
 * its key is only a proposal: the server gives it a fresh one.
 * @returns the stored identity, or a new one
 */
export function storedIdentity(): Identity {
  try {
    const store = storage();
    const clientId = store?.getItem(STORAGE_KEY);
    if (clientId) return { clientId, clientKey: store?.getItem(KEY_STORAGE) ?? null };
  } catch {
    // Fall through to a fresh id.
  }
  return { clientId: uuid(), clientKey: null };
}

/** Keeps the id the server confirmed, and its key, for the next page load. */
export function storeIdentity(identity: Identity): void {
  try {
    const store = storage();
    store?.setItem(STORAGE_KEY, identity.clientId);
    if (identity.clientKey) store?.setItem(KEY_STORAGE, identity.clientKey);
  } catch {
    // Not kept, then: the next load gets a fresh id.
  }
}
