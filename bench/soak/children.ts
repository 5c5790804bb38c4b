/** The soak run's child processes: Bun scripts with piped stdin/stdout, read a line at a time, all killed when the run ends. */
import type { Subprocess } from "bun";

const live = new Set<Subprocess>();

/** A child process speaking lines: commands in on stdin, `PREFIX payload` lines out on stdout. */
export interface Child {
  send(line: string): void;
  /** @returns the payload of the next stdout line starting with `prefix`; throws if none comes within `ms` */
  next(prefix: string, ms: number): Promise<string>;
  exited: Promise<number>;
}

/** Starts `bun <script> ...args`; its stderr goes to ours. */
export function spawnChild(name: string, script: string, args: string[]): Child {
  const proc = Bun.spawn([process.execPath, script, ...args], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  live.add(proc);
  void proc.exited.then(() => live.delete(proc));
  const lines: string[] = [];
  let ended = false;
  // One waiter at a time: the driver waits for one line of a child before the next.
  let wake = null as (() => void) | null;
  void (async () => {
    const decoder = new TextDecoder();
    const reader = proc.stdout.getReader();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const parts = (rest + decoder.decode(value, { stream: true })).split("\n");
      rest = parts.pop() as string;
      lines.push(...parts);
      wake?.();
    }
    ended = true;
    wake?.();
  })();
  return {
    exited: proc.exited,
    send(line) {
      proc.stdin.write(`${line}\n`);
      proc.stdin.flush();
    },
    async next(prefix, ms) {
      const deadline = Date.now() + ms;
      for (;;) {
        const i = lines.findIndex((l) => l.startsWith(prefix));
        if (i >= 0) return (lines.splice(i, 1)[0] as string).slice(prefix.length).trim();
        if (ended) throw new Error(`${name} exited (code ${await proc.exited}) before printing ${prefix}`);
        if (Date.now() >= deadline) throw new Error(`${name} printed no ${prefix} within ${ms} ms`);
        const { promise, resolve } = Promise.withResolvers<void>();
        wake = resolve;
        const timer = setTimeout(resolve, deadline - Date.now());
        await promise;
        clearTimeout(timer);
        wake = null;
      }
    },
  };
}

/** Kills every child still running; safe to call more than once. */
export function killChildren(): void {
  for (const proc of live) proc.kill();
  live.clear();
}
