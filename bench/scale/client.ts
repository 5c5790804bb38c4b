/**
 * One client process of the scale bench: `bun bench/scale/client.ts <raw|chatter> <port> <index> <addresses>`.
 * Its sockets come from 127.0.0.<10 + index * addresses + j>, spread over `addresses` source addresses.
 * Commands on stdin, one a line:
 *   open <n>         opens sockets until it holds n (a Chatter socket completes HELLO and WELCOME; a raw one
 *                    has one echo), then prints "OPEN <n>"
 *   expect <k> <min> prints "EXPECTING", then "GOT" once every socket has had k messages of at least min bytes
 *   calls <seconds>  every socket makes one echo call a second, spread evenly over the second; then prints
 *                    "CALLS <json>" with the round-trip histogram (histogram.ts), calls made and calls skipped
 *                    (a socket whose last call had no answer when the next was due)
 *   close            closes every socket and exits
 * It exits by itself when stdin closes (its parent is gone) and after 15 minutes in any case.
 */
import { createInterface } from "node:readline";
import { encodeFrame, FrameType, PROTOCOL_VERSION } from "../../src/wire/frames.ts";
import { countValues } from "../../src/wire/guard.ts";
import { PAYLOAD } from "../procs.ts";
import { BUCKETS, bucketOf } from "./histogram.ts";
import { type BareSocket, openBare } from "./ws.ts";

const [system, portArg, indexArg, addressesArg] = process.argv.slice(2);
const port = Number(portArg);
const index = Number(indexArg);
const addresses = Number(addressesArg);
const chatter = system === "chatter";
setTimeout(() => process.exit(3), 15 * 60_000).unref();

interface Conn {
  socket: BareSocket;
  /** When the call in flight was sent (performance.now()), or 0. */
  sentAt: number;
  /** Calls made on this socket: the next call's id. */
  calls: number;
}
const conns: Conn[] = [];
const histogram = new Float64Array(BUCKETS);
let expected = 0;
let minBytes = 0;
let received = 0;

function onMessage(conn: Conn, payload: Uint8Array): void {
  if (conn.sentAt !== 0) {
    const bucket = bucketOf((performance.now() - conn.sentAt) * 1000);
    histogram[bucket] = (histogram[bucket] as number) + 1;
    conn.sentAt = 0;
  } else {
    // Chatter sends a burst of broadcasts to a topic as one message (PROTOCOL.md, "Framing"): its frames are
    // counted with the guard's pass, which builds nothing (neither system's payload is decoded here).
    if (payload.byteLength >= minBytes) received += chatter ? countValues(payload, Number.POSITIVE_INFINITY) : 1;
    if (received === expected) console.log("GOT");
  }
}

/** Opens one socket and finishes its first exchange. */
async function openOne(n: number): Promise<Conn> {
  const local = `127.0.0.${10 + index * addresses + (n % addresses)}`;
  const id = `scale-${index}-${n}`;
  const conn: Conn = { socket: null as unknown as BareSocket, sentAt: 0, calls: 0 };
  let answered: () => void = () => {};
  const first = new Promise<void>((resolve) => (answered = resolve));
  let opened = false;
  conn.socket = await openBare(port, `/?cid=${id}`, local, (payload) => {
    if (opened) return onMessage(conn, payload);
    opened = true;
    answered();
  });
  const hello = encodeFrame([FrameType.Hello, PROTOCOL_VERSION, id, `s-${id}`, null, 0, 1]);
  // The same exchange as bench/load.ts "idle": HELLO and WELCOME for Chatter, a HELLO-sized echo for raw.
  conn.socket.send(chatter ? hello : new Uint8Array(hello.byteLength));
  await first;
  return conn;
}

async function open(n: number): Promise<void> {
  while (conns.length < n) {
    const group = Math.min(200, n - conns.length);
    const start = conns.length;
    conns.push(...(await Promise.all(Array.from({ length: group }, (_, j) => openOne(start + j)))));
  }
  console.log(`OPEN ${conns.length}`);
}

/** The message a call sends: a Chatter CALL of the echo procedure, or the same bytes to raw's echo. */
function callMessage(conn: Conn): Uint8Array {
  const id = ++conn.calls;
  const frame = encodeFrame([FrameType.Call, id, "echo", PAYLOAD, 30_000, id]);
  return chatter ? frame : new Uint8Array(frame.byteLength);
}

/** One call a second per socket for `seconds`, each socket at its own offset within the second. */
async function calls(seconds: number): Promise<void> {
  histogram.fill(0);
  let made = 0;
  let skipped = 0;
  const n = conns.length;
  const t0 = performance.now();
  let next = 0; // Calls started so far, over all seconds: call c goes to socket c % n at t0 + c / n seconds.
  const total = n * seconds;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * n));
      for (; next < due; next++) {
        const conn = conns[next % n] as Conn;
        if (conn.sentAt !== 0) {
          skipped++;
          continue;
        }
        conn.sentAt = performance.now();
        conn.socket.send(callMessage(conn));
        made++;
      }
      if (next >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  // Let the last answers come in (bounded).
  for (let i = 0; i < 200 && conns.some((c) => c.sentAt !== 0); i++) await Bun.sleep(10);
  const buckets: [number, number][] = [];
  for (let i = 0; i < BUCKETS; i++) if (histogram[i]) buckets.push([i, histogram[i] as number]);
  console.log(`CALLS ${JSON.stringify({ made, skipped, buckets })}`);
}

createInterface({ input: process.stdin })
  .on("line", (line) => {
    const [command, a, b] = line.trim().split(" ");
    if (command === "open") void open(Number(a)).catch(fail);
    else if (command === "expect") {
      expected = conns.length * Number(a);
      minBytes = Number(b);
      received = 0;
      console.log("EXPECTING");
    } else if (command === "calls") void calls(Number(a)).catch(fail);
    else if (command === "close") {
      for (const c of conns) c.socket.close();
      process.exit(0);
    }
  })
  .on("close", () => process.exit(0));

function fail(err: unknown): void {
  console.error(`scale client ${index}:`, err);
  process.exit(1);
}
