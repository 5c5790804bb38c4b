/** Timers must never keep a process alive on their own. */
export function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}
