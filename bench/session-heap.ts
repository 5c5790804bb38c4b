/**
 * `npm run bench:heap`: what an idle session costs in JavaScript heap, and in
 * which objects. A Chatter server runs in this process; bench/load.ts opens
 * idle connections from another one (each completes the handshake, as in the
 * idle-memory part of `npm run bench`). The heap is read after a full GC once
 * a first batch is open (so one-time costs are out of the way) and again
 * after a second batch; the difference, per session, is the figure.
 */
import { heapStats, estimateShallowMemoryUsageOf as shallow } from "bun:jsc";
import { createServer } from "../src/index.ts";
import { sessionOf } from "../src/server/connection.ts";
import { readUntil } from "../test/processes.ts";
import { ECHO } from "./procs.ts";

const CONNS = 1000;
// Every connection comes from 127.0.0.1: lift the per-address cap.
const chatter = createServer({ rateLimit: false, maxConnectionsPerAddress: 100_000, onOpen: (conn) => conn.subscribe("fanout") });
chatter.on(ECHO, (payload) => payload);
const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req, srv) => chatter.upgrade(req, srv), websocket: chatter.websocket });

/** Opens a batch of idle connections in a load process; @returns the process, to close them later */
async function openBatch(batch: number) {
  const proc = Bun.spawn(
    [process.execPath, `${import.meta.dir}/load.ts`, "idle", "chatter", String(server.port), String(CONNS), String(batch)],
    {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    },
  );
  await readUntil(proc.stdout as ReadableStream<Uint8Array>, /OPEN/);
  await Bun.sleep(300);
  return proc;
}

function reading() {
  Bun.gc(true);
  const stats = heapStats();
  return { size: stats.heapSize, types: stats.objectTypeCounts };
}

/** @returns the shallow size of each object one idle session keeps, by what it is */
function oneSession(): Record<string, number> {
  const conn = chatter.filter(() => true).at(-1);
  if (!conn) throw new Error("no session open");
  const session = sessionOf(conn);
  const state = session.state as object;
  const sizes: Record<string, number> = { session: shallow(session), "socket state": shallow(state), connection: shallow(conn) };
  if (session.topics) sizes["topics list"] = shallow(session.topics);
  sizes["session id"] = shallow(session.sessionId);
  sizes["client id"] = shallow(session.clientId);
  return sizes;
}

const first = await openBatch(0);
const before = reading();
const second = await openBatch(1);
const after = reading();
const objects = oneSession();
for (const proc of [first, second]) proc.stdin.write("close\n");
await Promise.all([first.exited, second.exited]);

console.log(`JS heap per idle session: ${Math.round((after.size - before.size) / CONNS)} bytes (Bun ${Bun.version})`);
console.log("objects per session:");
for (const [type, count] of Object.entries(after.types)) {
  const per = (count - (before.types[type] ?? 0)) / CONNS;
  if (per >= 0.5) console.log(`  ${per.toFixed(1).padStart(5)}  ${type}`);
}
console.log("one idle session's own objects (estimateShallowMemoryUsageOf, bytes):");
for (const [name, bytes] of Object.entries(objects)) console.log(`  ${String(bytes).padStart(5)}  ${name}`);
server.stop(true);
process.exit(0);
