/**
 * Chatter's own MessagePack encoder, for exactly the types PROTOCOL.md lists
 * ("Payload codec"), writing the same bytes as msgpackr with the options
 * codec-msgpackr.ts gives it. It is a few hundred lines where msgpackr is 55 KB
 * minified, which is what a browser downloads. It refuses the types the wire
 * format does not carry as it meets them, so no walk runs before packing.
 */
import { MAX_VALUES, WireFormatError } from "./guard.ts";

/** The widest bigint the wire format carries (guard.ts refuses wider ones on arrival). */
const BIGINT_LIMIT = 2n ** 8000n;
const INT64_MIN = -(2n ** 63n);
const UINT64_END = 2n ** 64n;

const utf8 = new TextEncoder();
// Frames are written back to back into one buffer and handed out as views of it, as msgpackr does;
// a full buffer is left to the views that hold it and a new one begins.
let buf = new Uint8Array(8192);
let view = new DataView(buf.buffer);
let pos = 0;
let start = 0;
let values = 0;

/** Makes room for `n` more bytes, moving the value being written to a new buffer if need be. */
function room(n: number): void {
  if (pos + n <= buf.length) return;
  const next = new Uint8Array(Math.max(8192, (pos - start + n) * 2));
  next.set(buf.subarray(start, pos));
  pos -= start;
  start = 0;
  buf = next;
  view = new DataView(buf.buffer);
}

/**
 * @returns the MessagePack bytes of a value, a view into a shared buffer (copy it to keep it: codec.ts's `copyBytes`)
 * @throws TypeError naming the type, for a value holding one the wire format does not carry (Error, RegExp, typed
 *   arrays but Uint8Array, symbols); WireFormatError past MAX_VALUES values
 */
export function pack(value: unknown): Uint8Array {
  writeWhole(value);
  return buf.subarray(start, pos);
}

/**
 * @returns the MessagePack bytes of a value in a right-sized buffer of their own, for bytes that are kept (an
 *   answer, for repeats). A small one is copied byte by byte, which is cheaper than a view and a copy of it;
 *   the shared buffer's room is used again.
 */
export function packKept(value: unknown): Uint8Array {
  writeWhole(value);
  const n = pos - start;
  const out = new Uint8Array(n);
  if (n <= 256) for (let i = 0; i < n; i++) out[i] = buf[start + i] as number;
  else out.set(buf.subarray(start, pos));
  pos = start;
  return out;
}

/** Writes one whole value into the shared buffer, from `start` to `pos`. */
function writeWhole(value: unknown): void {
  if (buf.length - pos < 512) {
    buf = new Uint8Array(8192);
    view = new DataView(buf.buffer);
    pos = 0;
  }
  start = pos;
  values = 0;
  try {
    write(value);
  } catch (err) {
    pos = start;
    throw err;
  }
}

function head(small: number, n: number, tag16: number): void {
  // fixarray / fixmap, then 16- and 32-bit lengths
  room(5);
  if (n < 16) buf[pos++] = small | n;
  else if (n < 0x10000) {
    buf[pos++] = tag16;
    view.setUint16(pos, n);
    pos += 2;
  } else {
    buf[pos++] = tag16 + 1;
    view.setUint32(pos, n);
    pos += 4;
  }
}

function write(v: unknown): void {
  if (++values > MAX_VALUES) throw new WireFormatError(`message holds more than ${MAX_VALUES} values`);
  switch (typeof v) {
    case "string":
      return writeString(v);
    case "number":
      return writeNumber(v);
    case "boolean":
      room(1);
      buf[pos++] = v ? 0xc3 : 0xc2;
      return;
    case "bigint":
      return writeBigint(v);
    case "undefined":
    case "function": // as msgpackr: a function has no value to send
      return fixext1(0, 0);
    case "object":
      if (v === null) {
        room(1);
        buf[pos++] = 0xc0;
        return;
      }
      return writeObject(v);
    default:
      throw new TypeError(`a ${typeof v} is not part of the wire format`);
  }
}

function writeNumber(n: number): void {
  room(9);
  if (n >>> 0 === n) {
    // -0 lands here too and goes as 0, as msgpackr sends it
    if (n < 0x80) buf[pos++] = n;
    else if (n < 0x100) {
      buf[pos++] = 0xcc;
      buf[pos++] = n;
    } else if (n < 0x10000) {
      buf[pos++] = 0xcd;
      view.setUint16(pos, n);
      pos += 2;
    } else {
      buf[pos++] = 0xce;
      view.setUint32(pos, n);
      pos += 4;
    }
  } else if (n >> 0 === n) {
    if (n >= -0x20) buf[pos++] = n & 0xff;
    else if (n >= -0x80) {
      buf[pos++] = 0xd0;
      buf[pos++] = n & 0xff;
    } else if (n >= -0x8000) {
      buf[pos++] = 0xd1;
      view.setInt16(pos, n);
      pos += 2;
    } else {
      buf[pos++] = 0xd2;
      view.setInt32(pos, n);
      pos += 4;
    }
  } else {
    buf[pos++] = 0xcb;
    view.setFloat64(pos, n);
    pos += 8;
  }
}

function writeString(s: string): void {
  const chars = s.length;
  // The header's size is guessed from the length in chars, and the bytes moved if the guess was too big.
  const guess = chars < 0x20 ? 1 : chars < 0x100 ? 2 : chars < 0x10000 ? 3 : 5;
  room(5 + chars * 3);
  let at = pos + guess;
  if (chars < 64) {
    for (let i = 0; i < chars; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) buf[at++] = c;
      else if (c < 0x800) {
        buf[at++] = 0xc0 | (c >> 6);
        buf[at++] = 0x80 | (c & 0x3f);
      } else if ((c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        c = 0x10000 + ((c & 0x3ff) << 10) + (s.charCodeAt(++i) & 0x3ff);
        buf[at++] = 0xf0 | (c >> 18);
        buf[at++] = 0x80 | ((c >> 12) & 0x3f);
        buf[at++] = 0x80 | ((c >> 6) & 0x3f);
        buf[at++] = 0x80 | (c & 0x3f);
      } else {
        if ((c & 0xf800) === 0xd800) c = 0xfffd; // a lone surrogate: U+FFFD, as TextEncoder writes it
        buf[at++] = 0xe0 | (c >> 12);
        buf[at++] = 0x80 | ((c >> 6) & 0x3f);
        buf[at++] = 0x80 | (c & 0x3f);
      }
    }
  } else {
    at += utf8.encodeInto(s, buf.subarray(at)).written;
  }
  const length = at - pos - guess;
  const size = length < 0x20 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
  if (size !== guess) buf.copyWithin(pos + size, pos + guess, at);
  if (size === 1) buf[pos] = 0xa0 | length;
  else if (size === 2) {
    buf[pos] = 0xd9;
    buf[pos + 1] = length;
  } else if (size === 3) {
    buf[pos] = 0xda;
    view.setUint16(pos + 1, length);
  } else {
    buf[pos] = 0xdb;
    view.setUint32(pos + 1, length);
  }
  pos += size + length;
}

function writeBigint(n: bigint): void {
  room(9);
  if (n >= INT64_MIN && n < -INT64_MIN) {
    buf[pos++] = 0xd3;
    view.setBigInt64(pos, n);
    pos += 8;
  } else if (n > 0n && n < UINT64_END) {
    buf[pos++] = 0xcf;
    view.setBigUint64(pos, n);
    pos += 8;
  } else {
    if (n >= BIGINT_LIMIT || n <= -BIGINT_LIMIT) throw new TypeError("a bigint wider than 8000 bits is not part of the wire format");
    // Extension 0x42: two's complement, big-endian, in as few 64-bit words as keep the sign.
    const sign = n < 0n ? -1n : 0n;
    const words: bigint[] = [];
    for (;;) {
      words.push(BigInt.asUintN(64, n));
      if (n >> 63n === sign) break;
      n >>= 64n;
    }
    extHead(words.length * 8, 0x42);
    for (let i = words.length - 1; i >= 0; i--, pos += 8) view.setBigUint64(pos, words[i] as bigint);
  }
}

/**
 * An extension's header, then its type: fixext for the sizes that have one (unless `sized`), ext 8/16/32 for
 * the rest. msgpackr writes bytes (extension 0x74) always with a size, whatever their length.
 */
function extHead(length: number, type: number, sized = false): void {
  room(6 + length);
  const fixed = sized
    ? 0
    : length === 1
      ? 0xd4
      : length === 2
        ? 0xd5
        : length === 4
          ? 0xd6
          : length === 8
            ? 0xd7
            : length === 16
              ? 0xd8
              : 0;
  if (fixed) buf[pos++] = fixed;
  else if (length < 0x100) {
    buf[pos++] = 0xc7;
    buf[pos++] = length;
  } else if (length < 0x10000) {
    buf[pos++] = 0xc8;
    view.setUint16(pos, length);
    pos += 2;
  } else {
    buf[pos++] = 0xc9;
    view.setUint32(pos, length);
    pos += 4;
  }
  buf[pos++] = type & 0xff;
}

/** `d4 type data`: undefined, and the marks in front of a Set's or a Map's array. */
function fixext1(type: number, data: number): void {
  room(3);
  buf[pos++] = 0xd4;
  buf[pos++] = type;
  buf[pos++] = data;
}

/** Extension 0x74: a byte naming the view (1 Uint8Array, 16 ArrayBuffer), then the raw bytes. */
function writeBytes(bytes: Uint8Array, kind: number): void {
  extHead(bytes.length + 1, 0x74, true);
  buf[pos++] = kind;
  buf.set(bytes, pos);
  pos += bytes.length;
}

function writeObject(v: object): void {
  // As msgpackr: an object whose constructor is Object goes as its fields, even if it has a toJSON.
  if ((v as { constructor?: unknown }).constructor === Object) return writeMap(v);
  if (Array.isArray(v)) {
    head(0x90, v.length, 0xdc);
    for (const item of v) write(item);
    return;
  }
  if (v instanceof Uint8Array) {
    if (v.constructor === Uint8Array) return writeBytes(v, 1);
    // A Buffer (or another subclass) goes as MessagePack bin, as msgpackr writes a Buffer.
    const n = v.length;
    room(5 + n);
    if (n < 0x100) {
      buf[pos++] = 0xc4;
      buf[pos++] = n;
    } else if (n < 0x10000) {
      buf[pos++] = 0xc5;
      view.setUint16(pos, n);
      pos += 2;
    } else {
      buf[pos++] = 0xc6;
      view.setUint32(pos, n);
      pos += 4;
    }
    buf.set(v, pos);
    pos += n;
    return;
  }
  if (v instanceof Date) return writeDate(v);
  // Counted as the guard counts them: the mark in front, and each pair's array.
  if (v instanceof Map) {
    fixext1(0x6d, 0);
    values += 1 + v.size;
    head(0x90, v.size, 0xdc);
    for (const [key, value] of v) {
      head(0x90, 2, 0xdc);
      write(key);
      write(value);
    }
    return;
  }
  if (v instanceof Set) {
    fixext1(0x73, 0);
    values++;
    head(0x90, v.size, 0xdc);
    for (const item of v) write(item);
    return;
  }
  if (v instanceof ArrayBuffer) return writeBytes(new Uint8Array(v), 16);
  refuse(v);
  // An object of another class travels as what its toJSON() returns, or as its own enumerable fields.
  const json = typeof (v as { toJSON?: unknown }).toJSON === "function" ? (v as { toJSON(): unknown }).toJSON() : v;
  if (json !== v) return write(json);
  writeMap(v);
}

function writeMap(v: object): void {
  const keys = Object.keys(v);
  head(0x80, keys.length, 0xde);
  values += keys.length;
  for (const key of keys) {
    writeString(key);
    write((v as Record<string, unknown>)[key]);
  }
}

function writeDate(d: Date): void {
  const ms = d.getTime();
  const seconds = ms / 1000;
  // MessagePack timestamps, in the smallest form that holds the value, as msgpackr picks them
  if (d.getMilliseconds() === 0 && seconds >= 0 && seconds < 0x100000000) {
    extHead(4, 0xff);
    view.setUint32(pos, seconds);
    pos += 4;
  } else if (seconds > 0 && seconds < 0x400000000) {
    extHead(8, 0xff);
    view.setUint32(pos, d.getMilliseconds() * 4000000 + ((seconds / 0x100000000) >> 0));
    view.setUint32(pos + 4, seconds);
    pos += 8;
  } else if (Number.isNaN(ms)) {
    fixext1(0xff, 0xff); // an invalid Date: a timestamp of no length
  } else {
    extHead(12, 0xff);
    view.setUint32(pos, d.getMilliseconds() * 1000000);
    view.setBigInt64(pos + 4, BigInt(Math.floor(seconds)));
    pos += 12;
  }
}

/** @throws TypeError for the objects msgpackr would pack but the wire format does not carry */
function refuse(v: object): void {
  if (v instanceof Error) throw new TypeError("an Error is not part of the wire format; send its fields as a plain object");
  if (v instanceof RegExp) throw new TypeError("a RegExp is not part of the wire format; send its source and flags");
  // The built-in tag names the view (Float32Array, DataView...) whatever its constructor property says.
  if (ArrayBuffer.isView(v)) {
    const name = Object.prototype.toString.call(v).slice(8, -1);
    throw new TypeError(`a ${name} is not part of the wire format; send its bytes as a Uint8Array`);
  }
}
