/** Timers must never keep a process alive on their own. */
export function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}

/**
 * Runs `fn` on a later turn of the event loop, once the microtasks queued now have run: `setImmediate` where
 * the runtime has it (Bun, Node, Deno), else a MessageChannel (browsers; unlike `setTimeout(0)`, never clamped
 * to 4 ms).
 */
export const soon: (fn: () => void) => void = (() => {
  const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
  if (typeof immediate === "function") return (fn: () => void) => void immediate(fn);
  if (typeof MessageChannel === "function") {
    const waiting: (() => void)[] = [];
    const channel = new MessageChannel();
    channel.port1.onmessage = () => waiting.shift()?.();
    return (fn: () => void) => {
      waiting.push(fn);
      channel.port2.postMessage(null);
    };
  }
  return (fn: () => void) => void setTimeout(fn, 0);
})();
