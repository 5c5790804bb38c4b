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

/**
 * The id stored in `localStorage` where there is one, so a browser keeps it
 * across reloads; elsewhere a fresh id per process.
 * @returns the client id
 */
export function persistentClientId(): string {
  try {
    const storage = (globalThis as { localStorage?: Storage }).localStorage;
    if (storage) {
      let id = storage.getItem(STORAGE_KEY);
      if (!id) {
        id = uuid();
        storage.setItem(STORAGE_KEY, id);
      }
      return id;
    }
  } catch {
    // Storage can throw (privacy modes, Node without a storage file); fall through.
  }
  return uuid();
}
