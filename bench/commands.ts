/**
 * What every benchmark server does besides serving: print "READY <port>",
 * then answer commands on stdin, one per line: "cpu" prints "CPU <µs of CPU
 * time so far>", "mem" collects garbage where it can and prints "MEM <rss bytes> HEAP <JS heap used>".
 */
import { createInterface } from "node:readline";

export function serveCommands(port: number): void {
  console.log(`READY ${port}`);
  createInterface({ input: process.stdin }).on("line", (line) => {
    const command = line.trim();
    if (command === "cpu") {
      const { user, system } = process.cpuUsage();
      console.log(`CPU ${user + system}`);
    } else if (command === "mem") {
      (globalThis as { Bun?: { gc(full: boolean): void } }).Bun?.gc(true);
      (globalThis as { gc?: () => void }).gc?.();
      const m = process.memoryUsage();
      console.log(`MEM ${m.rss} HEAP ${m.heapUsed}`);
    }
  });
}
