/** What the client needs from its surroundings: a socket URL, and browser events where there is a browser. */

/** @returns the WebSocket URL for `url`, with the client id in the query (`cid`) */
export function socketUrl(url: string, clientId: string): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const u = new URL(url, base);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  u.searchParams.set("cid", clientId);
  return u.toString();
}

/** Listens for `online` and `visibilitychange` where a `window` exists. @returns a function that stops listening */
export function watchEnvironment(wake: () => void): () => void {
  const win = (globalThis as { window?: Window }).window;
  if (typeof win?.addEventListener !== "function") return () => {};
  const onVisible = () => {
    if ((globalThis as { document?: Document }).document?.visibilityState !== "hidden") wake();
  };
  win.addEventListener("online", wake);
  win.addEventListener("visibilitychange", onVisible);
  return () => {
    win.removeEventListener("online", wake);
    win.removeEventListener("visibilitychange", onVisible);
  };
}
