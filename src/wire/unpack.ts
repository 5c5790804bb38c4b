/**
 * Chatter's own MessagePack decoder, the other half of pack.ts: it builds the
 * types PROTOCOL.md lists ("Payload codec") from the bytes msgpackr writes.
 * It reads only bytes the guard (guard.ts) has walked first: the guard has
 * checked that every length stays inside the message, that the message holds
 * at most MAX_VALUES values and that each extension is one the wire format
 * carries, in the form it uses. What is left to refuse here is a map key
 * that cannot be a property name.
 */

// ignoreBOM keeps a leading U+FEFF: it is part of the string that was sent, not a byte-order mark to strip.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
let src: Uint8Array = new Uint8Array(0);
let at = 0;
/**
 * Floats and 64-bit integers are read through these eight bytes, not a DataView of the message: the first view
 * of a fresh message (Bun hands each one over as a new Buffer) costs more than the number.
 */
const scratch = new Uint8Array(8);
const scratchView = new DataView(scratch.buffer);

/**
 * @param bytes - a run of MessagePack values back to back, already passed by the guard
 * @returns every value
 * @throws Error for a map key that is an array, a map, bytes, a Set or a Date
 */
export function unpackAll(bytes: Uint8Array): unknown[] {
  src = bytes;
  at = 0;
  const out: unknown[] = [];
  try {
    while (at < bytes.length) out.push(read());
  } finally {
    src = new Uint8Array(0); // hold no message past its decoding
  }
  return out;
}

const u16 = () => (src[at++]! << 8) | src[at++]!;
const u32 = () => src[at++]! * 0x1000000 + ((src[at++]! << 16) | (src[at++]! << 8) | src[at++]!);
/** @returns a plain Uint8Array copy of the next `n` bytes (Buffer's slice() would give a view of the message) */
const copy = (n: number) => new Uint8Array(take(n));
/** @returns the next `n` bytes, as a view; the reader moves past them */
function take(n: number): Uint8Array {
  const from = at;
  at += n;
  return src.subarray(from, at);
}
/** @returns the scratch view, holding the next `n` bytes (at most 8); the reader moves past them */
function next(n: number): DataView {
  for (let i = 0; i < n; i++) scratch[i] = src[at + i]!;
  at += n;
  return scratchView;
}

function read(): unknown {
  const t = src[at++]!;
  if (t < 0x80) return t; // positive fixint
  if (t < 0x90) return readMap(t & 0x0f);
  if (t < 0xa0) return readArray(t & 0x0f);
  if (t < 0xc0) return readString(t & 0x1f);
  if (t >= 0xe0) return t - 0x100; // negative fixint
  let n: number;
  switch (t) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4: // bin 8, 16, 32: a copy, so the message is not kept alive by it
      n = src[at++]!;
      return copy(n);
    case 0xc5:
      n = u16();
      return copy(n);
    case 0xc6:
      n = u32();
      return copy(n);
    case 0xc7: // ext 8, 16, 32
      return readExt(src[at++]!);
    case 0xc8:
      return readExt(u16());
    case 0xc9:
      return readExt(u32());
    case 0xca:
      return next(4).getFloat32(0);
    case 0xcb:
      return next(8).getFloat64(0);
    case 0xcc:
      return src[at++];
    case 0xcd:
      return u16();
    case 0xce:
      return u32();
    case 0xcf: // a 64-bit integer is always a bigint
      return next(8).getBigUint64(0);
    case 0xd0:
      return (src[at++]! << 24) >> 24;
    case 0xd1:
      return (u16() << 16) >> 16;
    case 0xd2:
      return u32() | 0;
    case 0xd3:
      return next(8).getBigInt64(0);
    case 0xd4: {
      // fixext 1: undefined, the marks in front of a Set's or a Map's array, or a one-byte extension
      const type = src[at]!;
      if (type === 0x73 || type === 0x6d || type === 0x00) {
        at += 2;
        if (type === 0x00) return undefined;
        const items = read() as Iterable<unknown>;
        return type === 0x73 ? new Set(items) : new Map(items as Iterable<[unknown, unknown]>);
      }
      return readExt(1);
    }
    case 0xd5:
      return readExt(2);
    case 0xd6:
      return readExt(4);
    case 0xd7:
      return readExt(8);
    case 0xd8:
      return readExt(16);
    case 0xd9: // str 8, 16, 32
      return readString(src[at++]!);
    case 0xda:
      return readString(u16());
    case 0xdb:
      return readString(u32());
    case 0xdc: // array 16, 32
      return readArray(u16());
    case 0xdd:
      return readArray(u32());
    case 0xde: // map 16, 32
      return readMap(u16());
    case 0xdf:
      return readMap(u32());
  }
  throw new Error(`byte ${t} is not MessagePack`); // 0xc1: the guard refuses it first
}

function readArray(n: number): unknown[] {
  const out = new Array<unknown>(n);
  for (let i = 0; i < n; i++) out[i] = read();
  return out;
}

function readMap(n: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const t = src[at]!;
    let key = t > 0xa0 && t < 0xb0 ? readKey(src[at++]! & 0x1f) : read(); // keys of up to 15 bytes are cached
    if (typeof key !== "string") {
      // As msgpackr: numbers, booleans and nil name a property by their text; a composite key cannot.
      if (typeof key === "object" && key !== null) throw new Error("a map key that is not a string, a number, a boolean or nil");
      key = String(key);
    }
    out[key === "__proto__" ? "__proto_" : (key as string)] = read();
  }
  return out;
}

/** Strings of at most this many bytes are built by hand when ASCII (measured on Bun 1.4: faster up to 64). */
const SHORT_STRING = 64;

/** The char codes of a short string, reused: the string is made in one step from them. */
const codes: number[] = [];

function readString(n: number): string {
  if (n > SHORT_STRING) return utf8.decode(take(n));
  // Short ASCII is cheaper built by hand: TextDecoder needs a view of the bytes, and the first view of a fresh
  // message (Bun hands the server a new Buffer for each) costs more than the whole string. Made in one step, not
  // a char at a time: each `+=` would leave a string behind for the collector.
  codes.length = n;
  for (let i = 0; i < n; i++) {
    const c = src[at + i]!;
    if (c >= 0x80) return utf8.decode(take(n));
    codes[i] = c;
  }
  at += n;
  return String.fromCharCode.apply(null, codes);
}

/** Map keys seen lately, by a hash of their bytes: a message repeats its keys, and so do the messages after it. */
const keys: ({ bytes: Uint8Array; key: string } | undefined)[] = new Array(4096);

/** @returns a map key written as a fixstr, from the cache when it was seen lately */
function readKey(n: number): string {
  if (n === 0) return "";
  const slot = ((n << 5) ^ (src[at]! << 4) ^ (src[at + n - 1]! << 1) ^ src[at + (n >> 1)]!) & 0xfff;
  const hit = keys[slot];
  if (hit?.bytes.length === n) {
    let i = 0;
    while (i < n && hit.bytes[i] === src[at + i]) i++;
    if (i === n) {
      at += n;
      return hit.key;
    }
  }
  // Copied by hand: slice() of a Buffer is a view, which would keep the whole message alive in the cache.
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = src[at + i]!;
  const key = readString(n);
  keys[slot] = { bytes, key };
  return key;
}

/** An extension of `length` data bytes after its type byte: undefined, bigint, bytes or a timestamp. */
function readExt(length: number): unknown {
  const type = src[at++]!;
  const data = take(length);
  switch (type) {
    case 0x00:
      return undefined;
    case 0x42:
      return readBigint(data);
    case 0x74: {
      // the first byte names the view: 1 a Uint8Array, 16 an ArrayBuffer (the guard lets no other through)
      const bytes = new Uint8Array(data.subarray(1));
      return data[0] === 16 ? bytes.buffer : bytes;
    }
    case 0xff:
      return readDate(data);
  }
  throw new Error(`extension type ${type} is not part of the wire format`); // the guard refuses it first
}

/** Extension 0x42: two's complement, big-endian. */
function readBigint(data: Uint8Array): bigint {
  if (data.length === 0) throw new Error("a bigint of no bytes");
  let hex = "0x";
  for (const b of data) hex += (b < 16 ? "0" : "") + b.toString(16);
  const n = BigInt(hex);
  return data[0]! & 0x80 ? n - (1n << BigInt(data.length * 8)) : n;
}

/** A MessagePack timestamp (extension -1) in its 32-, 64- or 96-bit form; any other size is an invalid Date. */
function readDate(d: Uint8Array): Date {
  const word = (i: number) => d[i]! * 0x1000000 + ((d[i + 1]! << 16) | (d[i + 2]! << 8) | d[i + 3]!);
  if (d.length === 4) return new Date(word(0) * 1000);
  if (d.length === 8) {
    const nanos = Math.floor(word(0) / 4);
    return new Date(nanos / 1e6 + ((d[3]! & 0x3) * 0x100000000 + word(4)) * 1000);
  }
  if (d.length === 12) {
    const seconds = (d[4]! & 0x80 ? -0x1000000000000 : 0) + d[6]! * 0x10000000000 + d[7]! * 0x100000000 + word(8);
    return new Date(word(0) / 1e6 + seconds * 1000);
  }
  return new Date(Number.NaN);
}
