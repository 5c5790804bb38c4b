/**
 * The server under test in the scale bench, in its own process: `bun bench/scale/server.ts <raw|chatter>`.
 * Both join every socket to the topic "fanout" on open and echo calls, as bench/systems/raw and
 * bench/systems/chatter do. Prints "READY <port> <open-file limit>", then answers commands on stdin:
 *   mem          a full GC, then RSS read five times 100 ms apart: "MEM <median RSS> <JS heap bytes>"
 *   fanout <k> <size>  k broadcasts of a `size`-byte frame to "fanout": raw `server.publish` of the bytes,
 *                Chatter `broadcast` of a blob that makes its EVENT frame that size; prints "SENT"
 *   conns        "CONNS <open sockets>"
 * It exits when stdin closes (its parent is gone).
 */

import { heapStats } from "bun:jsc";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { createServer } from "../../src/index.ts";
import { encodeFrame, FrameType } from "../../src/wire/frames.ts";
import { ECHO, NOTE } from "../procs.ts";

const chatterMode = process.argv[2] === "chatter";
let open = 0;

/** @returns this process's soft limit on open files, from /proc (what `ulimit -n` shows) */
function openFileLimit(): number {
  const line = readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max open files"));
  return Number(line?.split(/\s+/)[3] ?? Number.POSITIVE_INFINITY);
}

const chatter = createServer({
  rateLimit: false,
  maxConcurrentCalls: 100_000,
  maxFramesPerSecond: 0,
  // Every load socket comes from one of a few 127.0.0.x addresses.
  maxConnectionsPerAddress: 100_000,
  onOpen: (conn) => {
    open++;
    conn.subscribe("fanout");
  },
  onClose: () => void open--,
});
chatter.on(ECHO, (payload) => payload);

const server = chatterMode
  ? Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req, srv) => chatter.upgrade(req, srv),
      websocket: chatter.websocket,
    })
  : Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("WebSocket only", { status: 426 })),
      websocket: {
        perMessageDeflate: false,
        open(ws) {
          open++;
          ws.subscribe("fanout");
        },
        message: (ws, msg) => void ws.send(msg),
        close: () => void open--,
      },
    });

function fanout(k: number, size: number): void {
  if (!chatterMode) {
    const frame = new Uint8Array(size);
    for (let i = 0; i < k; i++) server.publish("fanout", frame);
    return;
  }
  const overhead = encodeFrame([FrameType.Event, 1_000_000, "note", new Uint8Array(size)]).byteLength - size;
  const blob = new Uint8Array(size - overhead);
  for (let i = 0; i < k; i++) void chatter.broadcast("fanout", NOTE, blob);
}

async function mem(): Promise<string> {
  const rss: number[] = [];
  for (let i = 0; i < 5; i++) {
    Bun.gc(true);
    rss.push(process.memoryUsage.rss());
    await Bun.sleep(100);
  }
  rss.sort((a, b) => a - b);
  const heap = heapStats();
  return `MEM ${rss[2]} ${heap.heapSize} ${heap.heapCapacity} ${heap.extraMemorySize}`;
}

console.log(`READY ${server.port} ${openFileLimit()}`);
createInterface({ input: process.stdin })
  .on("line", async (line) => {
    const [command, a, b] = line.trim().split(" ");
    if (command === "mem") console.log(await mem());
    else if (command === "fanout") {
      fanout(Number(a), Number(b));
      console.log("SENT");
    } else if (command === "conns") console.log(`CONNS ${open}`);
  })
  .on("close", () => process.exit(0));
