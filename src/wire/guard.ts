/**
 * The decoder's guard: one pass over MessagePack bytes that builds nothing,
 * counts the values and refuses what the wire format does not carry
 * (PROTOCOL.md, "Payload codec") before msgpackr reads a byte. msgpackr's
 * extension readers are one table shared by every user of msgpackr in the
 * process, so refusing types there would change other code's decoding; and
 * its record definitions (0x72) are read inline, past any extension reader.
 * The pass is an allowlist: anything it does not know is refused.
 */

/** Bytes the wire format does not carry. The message is a fixed phrase, safe to show to the peer. */
export class WireFormatError extends Error {
  override name = "WireFormatError";
}

/** What msgpackr would build from the extension types it knows, for messages naming the type. */
const NAMES = new Map([
  [0x62, "bundled strings"],
  [0x65, "Error"],
  [0x69, "structured-clone reference"],
  [0x6d, "Map"],
  [0x70, "structured-clone pointer"],
  [0x72, "record definition"],
  [0x73, "Set"],
  [0x78, "RegExp"],
]);
/** Extension 0x74's first byte names the view: msgpackr's codes; only 1 and 16 are carried. */
const VIEWS = [
  "Int8Array",
  "Uint8Array",
  "Uint8ClampedArray",
  "Int16Array",
  "Uint16Array",
  "Int32Array",
  "Uint32Array",
  "Float32Array",
  "Float64Array",
  "BigInt64Array",
  "BigUint64Array",
];
const UINT8ARRAY = 1;
const ARRAYBUFFER = 16;

const hex = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;
const truncated = () => new WireFormatError("truncated value");

/** @returns "extension type 0x65 (Error)", or without a name for a type msgpackr does not know */
function extName(type: number, view?: number): string {
  const name = type === 0x74 ? (VIEWS[view ?? -1] ?? (view === 17 ? "DataView" : "typed array")) : NAMES.get(type);
  return `extension type ${hex(type)}${name ? ` (${name})` : ""}`;
}

/**
 * Values one message may hold, nested ones included: decoding time grows with the count (a million empty maps
 * fit in 1 MiB and take a fifth of a second), so it is bounded whatever `maxMessageBytes` allows.
 */
export const MAX_VALUES = 131_072;

/** The widest bigint the wire format carries, in bytes of its extension (8192 bits). */
export const MAX_BIGINT_BYTES = 1024;

function refuse(type: number, view?: number): never {
  throw new WireFormatError(`${extName(type, view)} is not part of the wire format`);
}

/**
 * An extension of the wire format written as fixext 1: a type byte and one data byte.
 * @returns how many values follow it (Set and Map: the array they are made from)
 */
function fixext1(type: number, data: number): number {
  if (type === 0x73 || type === 0x6d) return 1; // data is a filler byte
  if (type === 0x00 || type === 0x42 || type === 0xff) return 0;
  if (type === 0x74 && (data === UINT8ARRAY || data === ARRAYBUFFER)) return 0;
  return refuse(type, data);
}

/** An extension in any other form: a type byte and `length` data bytes, all that msgpackr reads of it. */
function ext(bytes: Uint8Array, at: number, length: number): void {
  if (!(at + 1 + length <= bytes.length)) throw truncated(); // NaN too: a length read past the end
  const type = bytes[at]!;
  // msgpackr decodes a wide bigint in time that grows with the square of its width: keep them bounded.
  if (type === 0x42 && length > MAX_BIGINT_BYTES)
    throw new WireFormatError(`a bigint of ${length} bytes is over the wire format's ${MAX_BIGINT_BYTES}`);
  if (type === 0x00 || type === 0x42 || type === 0xff) return;
  const view = length > 0 ? bytes[at + 1] : undefined;
  if (type === 0x74 && (view === UINT8ARRAY || view === ARRAYBUFFER)) return;
  // msgpackr reads a Set's array after the data in these forms, and cannot read Chatter's Map in them.
  if (type === 0x73 || type === 0x6d) throw new WireFormatError(`${extName(type)} in a form the wire format does not use`);
  refuse(type, view);
}

const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const u32 = (b: Uint8Array, at: number) => b[at]! * 0x1000000 + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);

/** Bytes after the token, for tokens of a fixed size (ints, fixstr, nil, booleans, floats); -1 for the rest. */
const FIXED = new Int8Array(256).fill(-1);
const sized = (n: number, ...tokens: number[]) => {
  for (const t of tokens) FIXED[t] = n;
};
FIXED.fill(0, 0x00, 0x80).fill(0, 0xe0, 0x100); // positive and negative fixint
for (let n = 0; n < 32; n++) FIXED[0xa0 + n] = n; // fixstr
sized(0, 0xc0, 0xc2, 0xc3); // nil, false, true
sized(1, 0xcc, 0xd0); // uint 8, int 8
sized(2, 0xcd, 0xd1); // uint 16, int 16
sized(4, 0xca, 0xce, 0xd2); // float 32, uint 32, int 32
sized(8, 0xcb, 0xcf, 0xd3); // float 64, uint 64, int 64

/**
 * Walks a run of MessagePack values back to back without building them.
 * A read past the end yields NaN or 0, which ends the loop and fails the final check.
 * @param max - stop once the run holds more values than this
 * @returns the number of values, or `max + 1` as soon as there are more
 * @throws WireFormatError on bytes the wire format does not carry, or a truncated value
 */
export function countValues(bytes: Uint8Array, max: number): number {
  const end = bytes.length;
  let at = 0;
  let pending = 0; // values still to walk in the current top-level value
  let count = 0;
  // Every value takes a byte at least, so only a long message can hold too many.
  let budget = Math.min(end, MAX_VALUES);
  while (at < end) {
    if (pending === 0) {
      if (++count > max) return count;
      pending = 1;
    }
    if (--budget < 0) throw new WireFormatError(`message holds more than ${MAX_VALUES} values`);
    const t = bytes[at++]!;
    pending--;
    const fixed = FIXED[t]!; // 0x40-0x7f are records only after a record definition, which is refused
    if (fixed >= 0) {
      at += fixed;
    } else if (t < 0xa0) {
      pending += t < 0x90 ? (t & 0x0f) * 2 : t & 0x0f; // fixmap, fixarray
    } else if (t === 0xd9 || t === 0xc4) {
      at += 1 + bytes[at]!; // str 8, bin 8
    } else if (t === 0xda || t === 0xc5) {
      at += 2 + u16(bytes, at); // str 16, bin 16
    } else if (t === 0xdb || t === 0xc6) {
      at += 4 + u32(bytes, at); // str 32, bin 32
    } else if (t >= 0xdc && t <= 0xdf) {
      pending += (t & 1 ? u32(bytes, at) : u16(bytes, at)) * (t >= 0xde ? 2 : 1); // array 16/32, map 16/32
      at += t & 1 ? 4 : 2;
      if (pending > end - at) throw truncated(); // each value takes a byte at least: a huge count fails at once
    } else if (t === 0xd4) {
      if (at + 2 > end) throw truncated();
      pending += fixext1(bytes[at]!, bytes[at + 1]!);
      at += 2;
    } else if (t >= 0xd5 && t <= 0xd8) {
      const length = 1 << (t - 0xd4); // fixext 2, 4, 8, 16
      ext(bytes, at, length);
      at += 1 + length;
    } else if (t >= 0xc7 && t <= 0xc9) {
      const size = 1 << (t - 0xc7); // ext 8, 16, 32: the size of the length
      const length = t === 0xc7 ? bytes[at]! : t === 0xc8 ? u16(bytes, at) : u32(bytes, at);
      ext(bytes, at + size, length);
      at += size + 1 + length;
    } else {
      throw new WireFormatError("byte 0xc1 is not part of the wire format"); // MessagePack never uses it
    }
  }
  if (pending !== 0 || at !== end) throw truncated();
  return count;
}
