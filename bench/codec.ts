// Payload codec benchmark + correctness/safety matrix for chatter's wire format. From the repo root:
//   node_modules/.bin/bun bench/codec.ts [--checks-only]
// Every loop is bounded by time AND count; a full run takes ~45 s.
import { inspect, isDeepStrictEqual } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import type { Options as CborOptions } from "cbor-x";
import { type Options as MsgpackrOptions, isNativeAccelerationEnabled as mpNative, Packr, Unpackr } from "msgpackr";

// cbor-x's optional native string extractor (cbor-extract, built here against the V8 API) returns
// garbage ("Unexpected end of buffer") or abort()s Bun 1.4.5 on large payloads, so switch it off
// before cbor-x loads (hence the dynamic import). Under Node it works and is left alone.
if (typeof Bun !== "undefined") process.env.CBOR_NATIVE_ACCELERATION_DISABLED ??= "true";
const { Decoder, Encoder, isNativeAccelerationEnabled: cborNative } = await import("cbor-x");
const chatter = await import("../src/wire/codec.ts");
const chatter01 = await import("../test/fixtures/msgpackr-codec.ts");
const msgpack = await import("@msgpack/msgpack");
const notepack = (await import("notepack.io")).default;
const tiny = (await import("tiny-msgpack" as string)).default as { encode(v: unknown): Uint8Array; decode(b: Uint8Array): unknown };

// ------------------------------------------------------------------ codecs
// Plain msgpack maps (interoperable). useRecords:false implies mapsAsObjects:true: objects decode as objects,
// but a JS Map is written as a plain map too and decodes as an object. msgpackr has no Map tag in this mode, and
// its Map branch runs before addExtension() classes, so one can't be added. (Both libs mutate options objects.)
const MSGPACKR_OPTS: MsgpackrOptions = {
  useRecords: false,
  moreTypes: true, // Set (ext 0x73), typed arrays incl. Uint8Array (ext 0x74), Error (0x65), RegExp (0x78)
  structuredClone: false, // no refs on encode; the decoder also REJECTS ref/cycle exts 0x69/0x70
  useBigIntExtension: true, // bigints beyond int64/uint64 -> ext 0x42 instead of a RangeError
  int64AsType: "bigint", // the default: int64/uint64 decode as bigint, so 5n (sent as int64) stays 5n
  variableMapSize: true, // fixmap for small objects: 2 bytes less per object
};
// Record mode, self-contained: maxSharedStructures 0 writes each record definition inline in every
// message (no state shared by the peers). Objects become records, so a msgpack map can mean Map.
const MSGPACKR_REC_OPTS: MsgpackrOptions = { ...MSGPACKR_OPTS, useRecords: true, maxSharedStructures: 0 };
const CBORX_OPTS: CborOptions = {
  useRecords: false, // plain CBOR maps; this turns useTag259ForMaps on, so a Map comes back as a Map
  structuredClone: false, // NB: the decoder still honours tags 28/29 (shared refs), see safety table
  tagUint8Array: true, // tag 64: Uint8Array decodes as Uint8Array (the default only where Buffer exists)
  variableMapSize: true,
};

type Codec = { name: string; encode: (v: unknown) => Uint8Array; decode: (b: Uint8Array) => unknown };
const [te, td] = [new TextEncoder(), new TextDecoder()];
function msgpackr(name: string, opts: MsgpackrOptions): Codec {
  const [p, u] = [new Packr(opts), new Unpackr(opts)]; // separate encoder and decoder, as on two peers
  return { name, encode: (v) => p.pack(v), decode: (b) => u.unpack(b) };
}
const [cborEnc, cborDec] = [new Encoder(CBORX_OPTS), new Decoder(CBORX_OPTS)];
const CODECS: Codec[] = [
  msgpackr("msgpackr", MSGPACKR_OPTS),
  msgpackr("msgpackr-rec", MSGPACKR_REC_OPTS),
  { name: "cbor-x", encode: (v) => cborEnc.encode(v), decode: (b) => cborDec.decode(b) },
  // JSON cannot represent Map/Set/Date/bigint/bytes/undefined: see the correctness table
  { name: "JSON", encode: (v) => te.encode(JSON.stringify(v)), decode: (b) => JSON.parse(td.decode(b)) },
  // What Chatter ships: its own MessagePack encoder and decoder (src/wire/pack.ts, unpack.ts), behind the guard
  { name: "chatter", encode: chatter.encode, decode: chatter.decode },
  // What Chatter 0.1 shipped: msgpackr as above, plus the type checks on encode, the Map extension and the guard
  { name: "chatter 0.1 (msgpackr)", encode: chatter01.encode, decode: chatter01.decode },
  // The small codecs on npm, as they come (none carries Set, Map, undefined or wide bigints as Chatter does without extensions)
  { name: "@msgpack/msgpack", encode: (v) => msgpack.encode(v), decode: (b) => msgpack.decode(b) },
  { name: "notepack.io", encode: (v) => notepack.encode(v), decode: (b) => notepack.decode(b) },
  { name: "tiny-msgpack", encode: (v) => tiny.encode(v), decode: (b) => tiny.decode(b) },
];

/** Bytes from numbers and raw UTF-8 strings, for hand-crafted hostile inputs. */
const cat = (...parts: (number | string)[]) => Uint8Array.from(parts.flatMap((p) => (typeof p === "string" ? [...te.encode(p)] : p)));
const nest = (open: number, leaf: number) => Uint8Array.from([...new Array<number>(200_000).fill(open), leaf]);
const MP_CYCLE = cat(0xd6, 0x69, 0, 0, 0, 0, 0x81, 0xa1, "a", 0xd6, 0x70, 0, 0, 0, 0); // ext 0x69 id 0: {a: ext 0x70 ref 0}
const MP_HUGE = cat(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0); // array32 claiming 2^32-1 items, then 1 byte
// {"__proto__": {"polluted": true}} as a msgpack map, and as record 0x40 ["__proto__"] holding record 0x41 ["polluted"]
const MP_PROTO = cat(0x81, 0xa9, "__proto__", 0x81, 0xa8, "polluted", 0xc3);
const REC_PROTO = cat(0xd4, 0x72, 0x40, 0x91, 0xa9, "__proto__", 0xd4, 0x72, 0x41, 0x91, 0xa8, "polluted", 0xc3);
// One input per codec, in CODECS order; null = not expressible in that format.
// The codecs after the fifth get the MessagePack inputs of the first.
const ATTACKS: Record<string, (Uint8Array | null)[]> = {
  proto: [
    MP_PROTO,
    REC_PROTO,
    cat(0xa1, 0x69, "__proto__", 0xa1, 0x68, "polluted", 0xf5),
    cat('{"__proto__":{"polluted":true}}'),
    REC_PROTO,
  ],
  // CBOR: tag 28 "shareable" {a: tag 29 "sharedref" 0}
  cycle: [MP_CYCLE, MP_CYCLE, cat(0xd8, 28, 0xa1, 0x61, "a", 0xd8, 29, 0x00), null, MP_CYCLE],
  deep: [nest(0x91, 0xc0), nest(0x91, 0xc0), nest(0x81, 0xf6), cat("[".repeat(200_000), "]".repeat(200_000)), nest(0x91, 0xc0)],
  hugeLen: [MP_HUGE, MP_HUGE, cat(0x9a, 0xff, 0xff, 0xff, 0xff, 0xf6), null, MP_HUGE],
};

// ------------------------------------------------------------------ payloads (deterministic)
const lcg = (seed: number) => (): number => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const WORDS = "deploy latency socket bun review merge rollback cache queue schema retry metrics shard lag".split(" ");
const NAMES = ["Ada Lovelace", "Grace Hopper", "Linus Torvalds", "Barbara Liskov", "Ken Thompson"];
const rnd = lcg(42);
const pick = () => WORDS[Math.floor(rnd() * WORDS.length)] ?? "x";
const chatMessage = (i: number) => ({
  id: `msg_${(1_000_000 + i).toString(36)}`,
  author: { id: 4000 + (i % 97), name: NAMES[i % 5], avatar: `https://cdn.example.com/u/${4000 + (i % 97)}.png`, online: i % 3 > 0 },
  text: Array.from({ length: 10 + (i % 8) }, pick).join(" "),
  ts: 1_718_000_000_000 + i * 1337, // > 2^32: both binary codecs write a float64 (an int64 would decode as bigint)
  tags: Array.from({ length: 5 }, pick),
  replyTo: i % 4 === 0 ? null : `msg_${(999_000 + i).toString(36)}`,
});
const PAYLOADS: Record<string, unknown> = { small: { id: 12345, name: "update_count", value: 7 }, medium: chatMessage(1) };
PAYLOADS.large = Array.from({ length: 1000 }, (_, i) => chatMessage(i));

// ------------------------------------------------------------------ benchmark
const [WARMUP_MS, ROUND_MS, ROUNDS, MAX_ITERS] = [300, 150, 9, 5_000_000];
let sink: unknown; // keeps every result observable so the JIT cannot drop the work
/** ops/s of fn over ~ms (or MAX_ITERS calls); batched so clock reads don't dominate tiny payloads. */
function rate(fn: () => unknown, ms: number, batch: number): number {
  const t0 = performance.now();
  let [n, t] = [0, t0];
  for (; t - t0 < ms && n < MAX_ITERS; n += batch, t = performance.now()) for (let i = 0; i < batch; i++) sink = fn();
  return n / ((t - t0) / 1000);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0;
const spread = (xs: number[]) => `${Math.round(((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 100)}%`;
const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0));
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

function benchPayload(label: string, value: unknown): void {
  const batch = label === "large" ? 1 : label === "medium" ? 32 : 256;
  // decode from a Buffer: that is what Bun's server-side WebSocket hands to message()
  const stats = CODECS.map((c) => ({ c, wire: Buffer.from(c.encode(value)), e: [] as number[], d: [] as number[] }));
  // Rounds are the outer loop, so drift and GC noise spread evenly over the codecs. Round 0 warms up.
  for (let r = 0; r <= ROUNDS; r++) {
    for (const s of stats) {
      s.e[r] = rate(() => s.c.encode(value), r ? ROUND_MS : WARMUP_MS, batch);
      s.d[r] = rate(() => s.c.decode(s.wire), r ? ROUND_MS : WARMUP_MS, batch);
    }
  }
  for (const s of stats) [s.e, s.d] = [s.e.slice(1), s.d.slice(1)]; // drop the warm-up round
  const json = stats.find((s) => s.c.name === "JSON") ?? { wire: { length: 1 }, e: [1], d: [1] };
  const [jb, je, jd] = [json.wire.length, median(json.e), median(json.d)];
  console.log(`\n### ${label} — median of ${ROUNDS} × ${ROUND_MS} ms; spread = (max − min) / median\n`);
  console.log("| codec | bytes | size vs JSON | encode ops/s | vs JSON | decode ops/s | vs JSON | spread enc / dec |");
  console.log("|---|--:|--:|--:|--:|--:|--:|--:|");
  for (const { c, wire, e, d } of stats) {
    const cols = [wire.length, ratio(wire.length, jb), fmt(median(e)), ratio(median(e), je), fmt(median(d)), ratio(median(d), jd)];
    console.log(`| ${c.name} | ${cols.join(" | ")} | ${spread(e)} / ${spread(d)} |`);
  }
}

// ------------------------------------------------------------------ correctness
// inspect (unlike JSON.stringify) copes with cycles, deep nesting and bigint; the backticks stop markdown reading __x__ as bold
const show = (v: unknown) => `\`${`${v?.constructor?.name ?? typeof v} ${inspect(v, { depth: 1, breakLength: Infinity })}`.slice(0, 48)}\``;
/** ok(decoded, wireBytes) -> true: pass; string: a note carrying its own mark; false: fail. */
type Check = [label: string, input: unknown, ok: (out: unknown, wire: Uint8Array) => boolean | string];
const u8 = Uint8Array.from([0, 1, 2, 253, 254, 255]);
const sameBytes = (o: unknown) => o instanceof Uint8Array && isDeepStrictEqual([...o], [...u8]);
// Names the class decoded, then zeroes the wire bytes to see whether the result aliases them.
function bytesNote(o: unknown, wire: Uint8Array): boolean | string {
  if (!sameBytes(o)) return false;
  wire.fill(0);
  return `✅ ${(o as object).constructor.name}, ${sameBytes(o) ? "copy" : "⚠️ VIEW of input"}`;
}
const mixedMap = () => new Map<unknown, string>().set(1, "n").set({ k: 1 }, "o");
const big = (n: bigint): Check => [`bigint ${n}n`, n, (o) => o === n];
const CHECKS: Check[] = [
  ["Uint8Array (bytes, class, copy?)", u8, (o, w) => (o as object)?.constructor === Uint8Array && bytesNote(o, w)],
  ["Buffer (bytes, class, copy?)", Buffer.from(u8), bytesNote],
  ["Date", new Date(1_718_000_000_123), (o) => o instanceof Date && o.getTime() === 1_718_000_000_123],
  ["Map (string keys)", new Map(Object.entries({ a: 1, b: 2 })), (o) => o instanceof Map && o.get("a") === 1 && o.size === 2],
  ["Map (number + object keys)", mixedMap(), (o) => isDeepStrictEqual(o, mixedMap())],
  ["Set", new Set([1, "a"]), (o) => o instanceof Set && o.has(1) && o.has("a")],
  ...[5n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 2n ** 100n, -(2n ** 100n)].map(big),
  ["int 2^53−1 stays a number", 2 ** 53 - 1, (o) => o === 2 ** 53 - 1],
  ["NaN, ±Infinity", [NaN, Infinity, -Infinity], (o) => isDeepStrictEqual(o, [NaN, Infinity, -Infinity])],
  ["−0", -0, (o) => Object.is(o, -0)],
  ["{a: undefined, b: null} keeps key a", { a: undefined, b: null }, (o) => isDeepStrictEqual(o, { a: undefined, b: null })],
  ["[undefined, null]", [undefined, null], (o) => isDeepStrictEqual(o, [undefined, null])],
  ["nested plain objects (medium)", PAYLOADS.medium, (o) => isDeepStrictEqual(o, PAYLOADS.medium)],
  ["large payload (1000 messages)", PAYLOADS.large, (o) => isDeepStrictEqual(o, PAYLOADS.large)],
];
type Row = [label: string, cells: string[]];
function cell(c: Codec, input: unknown, ok: Check[2]): string {
  try {
    const wire = Buffer.from(c.encode(input)); // private copy: bytesNote overwrites it
    const out = c.decode(wire);
    const r = ok(out, wire);
    return r === true ? "✅" : r || `❌ ${show(out)}`;
  } catch (e) {
    return `❌ throws: ${String(e).slice(0, 48)}`;
  }
}
function table(title: string, rows: Row[]): void {
  console.log(`\n## ${title}\n\n| check | ${CODECS.map((c) => c.name).join(" | ")} |\n|---|${CODECS.map(() => "---").join("|")}|`);
  for (const [label, cells] of rows) console.log(`| ${label} | ${cells.map((x) => x.replaceAll("|", "\\|")).join(" | ")} |`);
}

// ------------------------------------------------------------------ safety (one worker per codec)
const [FUZZ_MS, FUZZ_MAX] = [2000, 20_000];
function attempt(c: Codec, b: Uint8Array): { kind: "value" | "Error" | "non-Error"; out?: unknown; msg?: string } {
  try {
    return { kind: "value", out: c.decode(b) };
  } catch (e) {
    return e instanceof Error ? { kind: "Error", msg: `${e.name}: ${e.message.slice(0, 60)}` } : { kind: "non-Error", msg: String(e) };
  }
}
function safety(c: Codec, at: number): Record<string, string> {
  const single = (b: Uint8Array | null, describe: (out: unknown) => string): string => {
    if (!b) return "n/a";
    const [t0, r] = [performance.now(), attempt(c, b)]; // evaluated left to right
    const ms = `(${(performance.now() - t0).toFixed(1)} ms)`;
    return r.kind === "value" ? `${describe(r.out)} ${ms}` : `${r.kind === "Error" ? "✅ throws" : "❌ throws non-Error"} ${r.msg} ${ms}`;
  };
  const protoCheck = (o: unknown) => {
    const polluted = Object.getPrototypeOf(o) !== Object.prototype || "polluted" in {};
    return `${polluted ? "❌ POLLUTED" : "✅ not polluted"}; own keys \`${JSON.stringify(Reflect.ownKeys(o as object))}\``;
  };
  // Feeds make(0), make(1), … to the decoder, bounded by count and by time, and counts the outcomes.
  const tally = (make: (i: number) => Uint8Array, total = FUZZ_MAX) => {
    const [n, t0] = [{ value: 0, Error: 0, "non-Error": 0 }, performance.now()];
    let [slowest, i] = [0, 0];
    for (; i < total && performance.now() - t0 < FUZZ_MS; i++) {
      const t = performance.now();
      n[attempt(c, make(i)).kind]++;
      slowest = Math.max(slowest, performance.now() - t);
    }
    return `${i} inputs → ${n.Error} Error, ${n.value} value, ${n["non-Error"]} non-Error; slowest ${slowest.toFixed(1)} ms`;
  };
  const valid = c.encode(PAYLOADS.medium);
  const [r, int] = [lcg(7), (n: number) => Math.floor(r() * n)];
  const attack = (k: string) => ATTACKS[k]?.[at] ?? (at > 4 ? (ATTACKS[k]?.[0] ?? null) : null);
  return {
    "`__proto__` key": single(attack("proto"), protoCheck),
    "crafted cycle (refs)": single(attack("cycle"), (o) => `⚠️ accepted → ${show(o)}`),
    "200k-deep nesting": single(attack("deep"), (o) => `returns ${show(o)}`),
    "length 2^32−1, 6 bytes": single(attack("hugeLen"), (o) => `⚠️ returns ${show(o)}`),
    "every truncation": tally((i) => valid.subarray(0, i), valid.length),
    "random bytes (1–64)": tally(() => Uint8Array.from({ length: 1 + int(64) }, () => int(256))),
    // ~3 random byte changes per valid message reach deeper parser states than pure noise does
    "mutated messages": tally(() => valid.map((v, _, a) => (r() < 3 / a.length ? int(256) : v))),
    // a stateful decoder must still work after all that garbage
    "decodes fine afterwards": isDeepStrictEqual(attempt(c, valid).out, PAYLOADS.medium) ? "✅" : "❌",
  };
}
/** safety() in a worker, so a decoder hang shows up as a timeout instead of freezing the run. */
function safetyInWorker(name: string): Promise<Record<string, string>> {
  type R = Record<string, string>;
  const w = new Worker(new URL(import.meta.url), { workerData: name });
  const done = new Promise<R>((resolve) => w.once("message", resolve));
  const crash = new Promise<R>((resolve) => w.once("error", (e: Error) => resolve({ worker: `❌ crashed: ${e.message}` })));
  // unref: the pending timer must not keep the process alive once every worker has answered
  const hang = new Promise<R>((resolve) => setTimeout(resolve, 20_000, { worker: "❌ HANG (> 20 s), terminated" }).unref());
  return Promise.race([done, crash, hang]).finally(() => void w.terminate());
}

// ------------------------------------------------------------------ main
if (!isMainThread) {
  const at = CODECS.findIndex((k) => k.name === workerData);
  if (CODECS[at]) parentPort?.postMessage(safety(CODECS[at], at));
} else {
  const t0 = performance.now();
  const runtime = `Bun ${typeof Bun !== "undefined" ? Bun.version : "n/a"}, ${process.platform}/${process.arch}`;
  console.log(`# chatter codec benchmark\n\n${runtime}; native string extractor: msgpackr ${mpNative}, cbor-x ${cborNative}`);
  const opts = { msgpackr: MSGPACKR_OPTS, "msgpackr-rec": MSGPACKR_REC_OPTS, "cbor-x": CBORX_OPTS };
  for (const [name, o] of Object.entries(opts)) console.log(`${name} ${JSON.stringify(o)}`);
  if (!process.argv.includes("--checks-only")) for (const [label, v] of Object.entries(PAYLOADS)) benchPayload(label, v);
  const checks = CHECKS.map(([label, input, ok]): Row => [label, CODECS.map((c) => cell(c, input, ok))]);
  table("Correctness (encode, then decode a Buffer copy with a separate decoder instance)", checks);
  const results = await Promise.all(CODECS.map((c) => safetyInWorker(c.name)));
  const rows = [...new Set(results.flatMap((r) => Object.keys(r)))].map((k): Row => [k, results.map((r) => r[k] ?? "—")]);
  table("Safety (hostile input; one worker per codec)", rows);
  console.log(`\n_total ${((performance.now() - t0) / 1000).toFixed(1)} s (sink: ${typeof sink})_`);
}
