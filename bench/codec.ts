/**
 * Payload codec benchmark + correctness/safety matrix for chatter's wire format.
 * Run from the repo root:  node_modules/.bin/bun bench/codec.ts
 * Every loop is bounded by time AND count; the whole run takes ~40 s.
 */
import { inspect, isDeepStrictEqual } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import type { Options as CborOptions } from "cbor-x";
import { isNativeAccelerationEnabled as msgpackrNative, type Options as MsgpackrOptions, Packr, Unpackr } from "msgpackr";

// cbor-x's optional native string extractor (cbor-extract, here compiled against the V8 API) returns
// garbage ("Unexpected end of buffer") or abort()s Bun 1.4.5 on large payloads, so it must be switched
// off before cbor-x loads (hence the dynamic import). Under Node it works and is left alone.
if (typeof Bun !== "undefined") process.env.CBOR_NATIVE_ACCELERATION_DISABLED ??= "true";
const { Decoder, Encoder, isNativeAccelerationEnabled: cborNative } = await import("cbor-x");

// ---------------------------------------------------------------- codecs
// Standard msgpack maps (interoperable). mapsAsObjects defaults to true once useRecords is false, so
// objects decode as objects, but a JS Map is then written as a plain msgpack map too and comes back
// as an object: msgpackr has no Map tag in this mode (its Map branch runs before any addExtension).
const MSGPACKR_OPTS: MsgpackrOptions = {
  useRecords: false,
  moreTypes: true, // Set (ext 0x73), typed arrays incl. Uint8Array (ext 0x74), Error, RegExp
  structuredClone: false, // also makes the decoder REJECT ref/cycle exts 0x69/0x70 from peers
  useBigIntExtension: true, // bigints outside int64/uint64 -> ext 0x42 instead of RangeError
  int64AsType: "bigint", // (default) int64/uint64 decode as bigint, so 5n stays 5n
  variableMapSize: true, // fixmap for small objects: -2 bytes per object
};
// Record mode, self-contained: maxSharedStructures 0 writes every record definition inline in each
// message (no state shared between peers); objects are records, so msgpack maps are free to mean Map.
const MSGPACKR_REC_OPTS: MsgpackrOptions = { ...MSGPACKR_OPTS, useRecords: true, maxSharedStructures: 0 };
const CBORX_OPTS: CborOptions = {
  useRecords: false, // plain CBOR maps; with this, useTag259ForMaps defaults on -> Map survives
  structuredClone: false,
  tagUint8Array: true, // tag 64 so a Uint8Array decodes as Uint8Array (default only when Buffer exists)
  variableMapSize: true,
};

interface Codec {
  name: string;
  encode: (v: unknown) => Uint8Array;
  decode: (b: Uint8Array) => unknown;
  attacks: Record<"proto" | "cycle" | "deep" | "hugeLen", Uint8Array | null>; // null = not expressible
}
const te = new TextEncoder();
const td = new TextDecoder();
/** Build bytes from numbers and raw UTF-8 strings (for hand-crafted hostile inputs). */
const cat = (...parts: (number | string)[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "number" ? [p] : [...te.encode(p)])));
const repeat = (byte: number, n: number, tail: number[]) => Uint8Array.from([...new Array<number>(n).fill(byte), ...tail]);
const DEEP = 200_000;

// Encoder and decoder are separate instances, as they would be on two peers.
function msgpackrCodec(name: string, opts: MsgpackrOptions, proto: Uint8Array): Codec {
  const p = new Packr(opts);
  const u = new Unpackr(opts);
  const deep = repeat(0x91, DEEP, [0xc0]); // 200k nested fixarrays
  const cycle = cat(0xd6, 0x69, 0, 0, 0, 0, 0x81, 0xa1, "a", 0xd6, 0x70, 0, 0, 0, 0); // id 0 = {a: ref 0}
  const hugeLen = cat(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0); // array32 claiming 2^32-1 items
  return { name, encode: (v) => p.pack(v), decode: (b) => u.unpack(b), attacks: { proto, cycle, deep, hugeLen } };
}
const MP_PROTO = cat(0x81, 0xa9, "__proto__", 0x81, 0xa8, "polluted", 0xc3); // {"__proto__":{"polluted":true}}
// Same attack in record form: record 0x40 = ["__proto__"], value = record 0x41 = ["polluted"] -> true
const REC_PROTO = cat(0xd4, 0x72, 0x40, 0x91, 0xa9, "__proto__", 0xd4, 0x72, 0x41, 0x91, 0xa8, "polluted", 0xc3);
const cborEnc = new Encoder(CBORX_OPTS);
const cborDec = new Decoder(CBORX_OPTS);

const CODECS: Codec[] = [
  msgpackrCodec("msgpackr", MSGPACKR_OPTS, MP_PROTO),
  msgpackrCodec("msgpackr-rec", MSGPACKR_REC_OPTS, REC_PROTO),
  {
    name: "cbor-x",
    encode: (v) => cborEnc.encode(v),
    decode: (b) => cborDec.decode(b),
    attacks: {
      proto: cat(0xa1, 0x69, "__proto__", 0xa1, 0x68, "polluted", 0xf5),
      cycle: cat(0xd8, 28, 0xa1, 0x61, "a", 0xd8, 29, 0x00), // tag 28 shareable / tag 29 sharedref
      deep: repeat(0x81, DEEP, [0xf6]),
      hugeLen: cat(0x9a, 0xff, 0xff, 0xff, 0xff, 0xf6),
    },
  },
  {
    name: "JSON",
    encode: (v) => te.encode(JSON.stringify(v)),
    decode: (b) => JSON.parse(td.decode(b)),
    attacks: { proto: cat('{"__proto__":{"polluted":true}}'), cycle: null, deep: cat(`${"[".repeat(DEEP)}${"]".repeat(DEEP)}`), hugeLen: null },
  },
];

// ---------------------------------------------------------------- payloads (deterministic)
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const WORDS = "deploy latency socket bun review merge rollback cache queue schema retry metrics shard lag".split(" ");
const NAMES = ["Ada Lovelace", "Grace Hopper", "Linus Torvalds", "Barbara Liskov", "Ken Thompson"];
function chatMessage(i: number, rnd: () => number) {
  const pick = () => WORDS[Math.floor(rnd() * WORDS.length)] ?? "x";
  const uid = 4000 + (i % 97);
  return {
    id: `msg_${(1_000_000 + i).toString(36)}`,
    channel: "eng-platform",
    author: { id: uid, name: NAMES[i % NAMES.length], avatar: `https://cdn.example.com/u/${uid}.png`, online: i % 3 !== 0 },
    text: Array.from({ length: 10 + (i % 8) }, pick).join(" "),
    ts: 1_718_000_000_000 + i * 1337, // > 2^32: encoded as float64 by both binary codecs
    tags: Array.from({ length: 5 }, pick),
    edited: i % 5 === 0,
    replyTo: i % 4 === 0 ? null : `msg_${(999_000 + i).toString(36)}`,
  };
}
const rnd = mulberry32(42);
const PAYLOADS: Record<string, unknown> = {
  small: { id: 12345, name: "update_count", value: 7 },
  medium: chatMessage(1, rnd),
  large: Array.from({ length: 1000 }, (_, i) => chatMessage(i, rnd)),
};

// ---------------------------------------------------------------- benchmark
const WARMUP_MS = 250, ROUND_MS = 250, ROUNDS = 5, MAX_ITERS = 5_000_000;
let sink: unknown; // keeps results observable so the JIT cannot drop the work
/** ops/s of fn over ~ms; calls are batched so clock reads don't dominate tiny payloads. */
function rate(fn: () => unknown, ms: number, batch: number): number {
  const t0 = performance.now();
  let n = 0, t = t0;
  while (t - t0 < ms && n < MAX_ITERS) {
    for (let i = 0; i < batch; i++) sink = fn();
    n += batch;
    t = performance.now();
  }
  return n / ((t - t0) / 1000);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0;
const spread = (xs: number[]) => `${Math.round(((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 100)}%`;
const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0));
const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

function benchPayload(label: string, value: unknown): void {
  const batch = label === "large" ? 1 : label === "medium" ? 32 : 256;
  const encoded = CODECS.map((c) => c.encode(value));
  const enc: number[][] = CODECS.map(() => []);
  const dec: number[][] = CODECS.map(() => []);
  for (let r = -1; r < ROUNDS; r++) {
    // rounds are the outer loop so drift/GC noise is spread evenly over codecs; r = -1 is warm-up
    CODECS.forEach((c, i) => {
      const bytes = encoded[i] as Uint8Array;
      const e = rate(() => c.encode(value), r < 0 ? WARMUP_MS : ROUND_MS, batch);
      const d = rate(() => c.decode(bytes), r < 0 ? WARMUP_MS : ROUND_MS, batch);
      if (r >= 0) enc[i]?.push(e), dec[i]?.push(d);
    });
  }
  const j = CODECS.findIndex((c) => c.name === "JSON");
  const [jb, je, jd] = [encoded[j]?.length ?? 1, median(enc[j] ?? []), median(dec[j] ?? [])];
  console.log(`\n### ${label} (JSON ${jb} B) — median of ${ROUNDS}×${ROUND_MS} ms, spread = (max−min)/median\n`);
  console.log("| codec | bytes | size vs JSON | encode ops/s | enc vs JSON | decode ops/s | dec vs JSON | spread enc/dec |");
  console.log("|---|--:|--:|--:|--:|--:|--:|--:|");
  CODECS.forEach((c, i) => {
    const [b, e, d] = [encoded[i]?.length ?? 0, median(enc[i] ?? []), median(dec[i] ?? [])];
    console.log(`| ${c.name} | ${b} | ${x(b, jb)} | ${fmt(e)} | ${x(e, je)} | ${fmt(d)} | ${x(d, jd)} | ${spread(enc[i] ?? [])}/${spread(dec[i] ?? [])} |`);
  });
}

// ---------------------------------------------------------------- correctness
// inspect (not JSON.stringify): copes with cycles, 200k-deep nesting and bigint in hostile results
const show = (v: unknown) => `${v?.constructor?.name ?? typeof v} ${inspect(v, { depth: 1, breakLength: Infinity })}`.slice(0, 48);
/** ok(out, encoded): true = pass, string = pass with a note, false = fail. */
type Check = [label: string, input: unknown, ok: (out: unknown, enc: Uint8Array) => boolean | string];
const big = (n: bigint): Check => [`bigint ${n}n`, n, (o) => o === n];
const u8 = Uint8Array.from([0, 1, 2, 253, 254, 255]);
const sameBytes = (o: unknown, want: Uint8Array) => o instanceof Uint8Array && isDeepStrictEqual([...o], [...want]);
const CHECKS: Check[] = [
  ["Uint8Array → Uint8Array, same bytes", u8, (o) => sameBytes(o, u8) && (o as object).constructor === Uint8Array],
  ["… decoded bytes are a copy, not a view of the input", u8, (o, enc) => (enc.fill(0), sameBytes(o, u8))],
  ["Buffer → (class returned)", Buffer.from(u8), (o) => sameBytes(o, u8) && (o as object).constructor.name],
  ["Date", new Date(1_718_000_000_123), (o) => o instanceof Date && o.getTime() === 1_718_000_000_123],
  ["Map (string keys)", new Map([["a", 1], ["b", 2]]), (o) => o instanceof Map && o.get("a") === 1 && o.size === 2],
  ["Map (number + object keys)", new Map<unknown, string>([[1, "n"], [{ k: 1 }, "o"]]),
    (o) => o instanceof Map && o.get(1) === "n" && [...o.keys()].some((k) => isDeepStrictEqual(k, { k: 1 }))],
  ["Set", new Set([1, "a"]), (o) => o instanceof Set && o.has(1) && o.has("a")],
  big(5n), big(2n ** 63n - 1n), big(-(2n ** 63n)), big(2n ** 64n - 1n), big(2n ** 100n), big(-(2n ** 100n)),
  ["int 2^53−1 stays number", 2 ** 53 - 1, (o) => o === 2 ** 53 - 1],
  ["NaN, ±Infinity", [NaN, Infinity, -Infinity], (o) => isDeepStrictEqual(o, [NaN, Infinity, -Infinity])],
  ["−0", -0, (o) => Object.is(o, -0)],
  ["{a: undefined, b: null} keeps key a", { a: undefined, b: null }, (o) => isDeepStrictEqual(o, { a: undefined, b: null })],
  ["[undefined, null]", [undefined, null], (o) => isDeepStrictEqual(o, [undefined, null])],
  ["nested plain objects (medium msg)", PAYLOADS.medium, (o) => isDeepStrictEqual(o, PAYLOADS.medium)],
  ["large payload (1000 msgs)", PAYLOADS.large, (o) => isDeepStrictEqual(o, PAYLOADS.large)],
];
function correctness(): void {
  console.log(`\n## Correctness (encode → decode with a separate decoder instance)\n`);
  console.log(`| check | ${CODECS.map((c) => c.name).join(" | ")} |\n|---|${CODECS.map(() => "---").join("|")}|`);
  for (const [label, input, ok] of CHECKS) {
    const cells = CODECS.map((c) => {
      try {
        const enc = Uint8Array.from(c.encode(input)); // own copy: the copy check overwrites it
        const out = c.decode(enc);
        const r = ok(out, enc);
        return r === true ? "✅" : r ? `✅ ${r}` : `❌ ${show(out)}`;
      } catch (e) {
        return `❌ throws: ${(e as Error).message.slice(0, 50)}`;
      }
    });
    console.log(`| ${label} | ${cells.join(" | ")} |`);
  }
}

// ---------------------------------------------------------------- safety (runs in a worker per codec)
const FUZZ_MS = 2000, FUZZ_MAX = 20_000;
function attempt(c: Codec, b: Uint8Array): { kind: "value" | "Error" | "non-Error"; out?: unknown; msg?: string } {
  try {
    return { kind: "value", out: c.decode(b) };
  } catch (e) {
    return e instanceof Error ? { kind: "Error", msg: `${e.name}: ${e.message.slice(0, 60)}` } : { kind: "non-Error", msg: String(e) };
  }
}
function safety(c: Codec): Record<string, string> {
  const res: Record<string, string> = {};
  const { proto, cycle, deep, hugeLen } = c.attacks;
  const p = attempt(c, proto as Uint8Array);
  if (p.kind !== "value") res.proto = `throws ${p.msg}`;
  else {
    const o = p.out as Record<string, unknown>;
    const polluted = Object.getPrototypeOf(o) !== Object.prototype || ({} as Record<string, unknown>).polluted !== undefined;
    res.proto = `${polluted ? "❌ POLLUTED" : "✅ not polluted"}; own keys: ${JSON.stringify(Reflect.ownKeys(o))}`;
  }
  const expectThrow = (b: Uint8Array | null): string => {
    if (!b) return "n/a";
    const t0 = performance.now();
    const r = attempt(c, b);
    const ms = (performance.now() - t0).toFixed(1);
    return r.kind === "value" ? `↩ returns ${show(r.out)} (${ms} ms)` : `✅ ${r.msg} (${ms} ms)`;
  };
  [res.cycle, res.deep, res.hugeLen] = [expectThrow(cycle), expectThrow(deep), expectThrow(hugeLen)];
  // Truncation: every strict prefix of a valid message must throw.
  const valid = c.encode(PAYLOADS.medium);
  const tally = (inputs: Iterable<Uint8Array>) => {
    const n = { value: 0, Error: 0, "non-Error": 0 };
    let maxMs = 0, count = 0;
    const t0 = performance.now();
    for (const b of inputs) {
      const t = performance.now();
      n[attempt(c, b).kind]++;
      maxMs = Math.max(maxMs, performance.now() - t);
      if (++count >= FUZZ_MAX || performance.now() - t0 > FUZZ_MS) break;
    }
    return `${count} inputs: ${n.Error} Error, ${n.value} value, ${n["non-Error"]} non-Error; slowest ${maxMs.toFixed(2)} ms`;
  };
  res.truncated = tally(Array.from({ length: valid.length }, (_, i) => valid.subarray(0, i)));
  const r = mulberry32(7);
  res.random = tally((function* () { for (;;) yield Uint8Array.from({ length: 1 + Math.floor(r() * 64) }, () => Math.floor(r() * 256)); })());
  res.mutated = tally((function* () {
    for (;;) { // 1–3 random byte flips in a valid message reach deeper parser states than pure noise
      const m = Uint8Array.from(valid);
      for (let k = 0; k < 1 + Math.floor(r() * 3); k++) m[Math.floor(r() * m.length)] = Math.floor(r() * 256);
      yield m;
    }
  })());
  const after = attempt(c, valid); // stateful decoders must recover after a stream of garbage
  res.recovers = after.kind === "value" && isDeepStrictEqual(after.out, PAYLOADS.medium) ? "✅ yes" : `❌ ${after.msg ?? show(after.out)}`;
  return res;
}
/** Runs safety() in a worker so a decoder hang shows up as a timeout instead of freezing the run. */
function safetyInWorker(name: string): Promise<Record<string, string>> {
  return new Promise((resolve) => {
    const w = new Worker(new URL(import.meta.url), { workerData: name });
    const timer = setTimeout(() => void w.terminate().then(() => resolve({ error: "❌ HANG (>20 s, terminated)" })), 20_000);
    w.once("message", (m: Record<string, string>) => (clearTimeout(timer), void w.terminate(), resolve(m)));
    w.once("error", (e: Error) => (clearTimeout(timer), resolve({ error: `❌ worker crashed: ${e.message}` })));
  });
}

// ---------------------------------------------------------------- main
if (!isMainThread) {
  const c = CODECS.find((k) => k.name === workerData);
  if (c) parentPort?.postMessage(safety(c));
} else {
  const t0 = performance.now();
  console.log(`# chatter codec benchmark\n\nBun ${typeof Bun !== "undefined" ? Bun.version : "n/a"}, ${process.platform}/${process.arch}`);
  console.log(`native string extractor: msgpackr ${msgpackrNative}, cbor-x ${cborNative}`);
  console.log(`msgpackr opts ${JSON.stringify(MSGPACKR_OPTS)}\nmsgpackr-rec opts ${JSON.stringify(MSGPACKR_REC_OPTS)}\ncbor-x opts ${JSON.stringify(CBORX_OPTS)}`);
  if (!process.argv.includes("--checks-only")) for (const [label, value] of Object.entries(PAYLOADS)) benchPayload(label, value);
  correctness();
  const rows = ["proto", "cycle", "deep", "hugeLen", "truncated", "random", "mutated", "recovers", "error"];
  const results = await Promise.all(CODECS.map((c) => safetyInWorker(c.name)));
  console.log(`\n## Safety (hostile input, one worker per codec)`);
  CODECS.forEach((c, i) => {
    console.log(`\n### ${c.name}\n\n| check | result |\n|---|---|`);
    for (const row of rows) if (results[i]?.[row] !== undefined) console.log(`| ${row} | ${results[i]?.[row]?.replaceAll("|", "\\|")} |`);
  });
  console.log(`\n_total ${((performance.now() - t0) / 1000).toFixed(1)} s; sink ${typeof sink}_`);
}
