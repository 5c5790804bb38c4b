/**
 * The payload codec: MessagePack through msgpackr, chosen by measurement
 * (bench/codec.ts; figures in PROTOCOL.md). It keeps Uint8Array, Date, Set,
 * bigint and undefined as they are. Map needs help, below. Both directions
 * carry exactly the types PROTOCOL.md lists: the encoder refuses the others up
 * front, and the guard (guard.ts) refuses their bytes before msgpackr reads them.
 */
import { addExtension, C1, Packr } from "msgpackr";
import { countValues, MAX_VALUES, WireFormatError } from "./guard.ts";

export { WireFormatError } from "./guard.ts";

const packr = new Packr({
  useRecords: false, // plain maps: records re-parse their definitions per message and decode small frames 3.5x slower
  moreTypes: true, // Uint8Array as itself (survey() refuses the other typed arrays)
  structuredClone: false, // no reference tracking: a peer cannot send cycles
  useBigIntExtension: true, // bigints wider than 64 bits
  int64AsType: "bigint",
  variableMapSize: true,
});

/**
 * msgpackr writes a Map and a plain object as the same MessagePack map, so
 * one of them would come back as the other. A Map is swapped for a WireMap
 * before packing, which travels as extension 0x6d and unpacks as a Map.
 */
class WireMap {
  constructor(readonly entries: [unknown, unknown][]) {}
}
addExtension({
  Class: WireMap,
  type: 0x6d,
  write: (m: WireMap) => m.entries,
  read: (entries: [unknown, unknown][]) => new Map(entries),
});

/**
 * @returns the MessagePack bytes of a value
 * @throws TypeError naming the type, for a value holding one the wire format does not carry (Error, RegExp, typed arrays but Uint8Array)
 */
export function encode(value: unknown): Uint8Array {
  const found = survey(value);
  const bytes = packr.pack(found & HAS_MAP ? swapMaps(value) : value);
  // An object of a class we do not know packs as its fields or its toJSON(), and a long message may hold more
  // values than the wire format allows: check what came out, as the peer will.
  if (found & OPAQUE || bytes.byteLength > MAX_VALUES) countValues(bytes, 1);
  return bytes;
}

/**
 * A frame that will be kept (for repeats or replay) as its own small buffer.
 * `encode` returns a view into msgpackr's shared 8 KB buffer, and keeping the
 * view would keep that whole buffer alive.
 * @returns a right-sized copy
 */
export function copyBytes(frame: Uint8Array): Uint8Array {
  return new Uint8Array(frame);
}

/** More values in one message than the caller allows; none of them was decoded. */
export class TooManyValues extends Error {
  override name = "TooManyValues";
}

/**
 * @returns the one value the bytes hold
 * @throws WireFormatError for bytes the wire format does not carry; msgpackr's own error for other malformed bytes
 */
export function decode(bytes: Uint8Array): unknown {
  if (countValues(bytes, 1) !== 1) throw new WireFormatError("not exactly one value");
  return packr.unpack(bytes);
}

/**
 * @param maxValues - the most values the bytes may hold; past it nothing is decoded
 * @returns every value of a run of MessagePack values back to back
 * @throws TooManyValues past `maxValues`; WireFormatError for bytes the wire format does not carry; msgpackr's own error for other malformed bytes
 */
export function decodeAll(bytes: Uint8Array, maxValues = Infinity): unknown[] {
  const count = countValues(bytes, maxValues);
  if (count === 0) throw new WireFormatError("empty message");
  if (count > maxValues) throw new TooManyValues(`more than ${maxValues} values`);
  return packr.unpackMultiple(bytes) as unknown[];
}

const isPlain = (v: object) => {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};

/** survey() found a Map: it must be swapped for a WireMap before packing. */
const HAS_MAP = 1;
/** survey() found an object of a class it does not see into: check the bytes it packs to. */
const OPAQUE = 2;

/**
 * One walk that allocates nothing: refuses the types the wire format does
 * not carry, and notes what the packing needs. Most payloads hold no Map.
 * @returns HAS_MAP and OPAQUE, or-ed
 */
function survey(value: unknown): number {
  if (typeof value !== "object" || value === null) return typeof value === "bigint" ? checkBigint(value) : 0;
  let found = 0;
  if (Array.isArray(value)) {
    for (const item of value) found |= survey(item);
    return found;
  }
  if (isPlain(value)) {
    for (const key in value) found |= survey((value as Record<string, unknown>)[key]);
    // msgpackr packs an object whose constructor is not Object through its toJSON(), if it has one.
    return (value as { constructor?: unknown }).constructor === Object ? found : found | OPAQUE;
  }
  if (value instanceof Map) {
    for (const [k, v] of value) found |= survey(k) | survey(v);
    return found | HAS_MAP;
  }
  if (value instanceof Set) {
    for (const item of value) found |= survey(item);
    return found;
  }
  if (value instanceof Date || value instanceof Uint8Array || value instanceof ArrayBuffer) return 0;
  const refused = refusedType(value);
  if (refused) throw new TypeError(refused);
  return OPAQUE;
}

/** The widest bigint the wire format carries (guard.ts refuses wider ones on arrival). */
const BIGINT_LIMIT = 2n ** 8000n;

function checkBigint(value: bigint): number {
  if (value >= BIGINT_LIMIT || value <= -BIGINT_LIMIT) throw new TypeError("a bigint wider than 8000 bits is not part of the wire format");
  return 0;
}

/** @returns why msgpackr would pack the value but the wire format does not carry it, or null */
function refusedType(value: object): string | null {
  if (value instanceof Error) return "an Error is not part of the wire format; send its fields as a plain object";
  if (value instanceof RegExp) return "a RegExp is not part of the wire format; send its source and flags";
  // The built-in tag names the view (Float32Array, DataView...) whatever its constructor property says.
  const view = ArrayBuffer.isView(value) ? Object.prototype.toString.call(value).slice(8, -1) : null;
  if (view) return `a ${view} is not part of the wire format; send its bytes as a Uint8Array`;
  if (value === C1) return "msgpackr's C1 marker is not part of the wire format";
  return null;
}

/** Copies the value with every Map (at any depth) replaced by a WireMap. */
function swapMaps(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (value instanceof Map) return new WireMap(Array.from(value, ([k, v]) => [swapMaps(k), swapMaps(v)]));
  if (Array.isArray(value)) return value.map(swapMaps);
  if (value instanceof Set) return new Set(Array.from(value, swapMaps));
  if (!isPlain(value)) return value;
  const out: Record<string, unknown> = {};
  for (const key in value) out[key] = swapMaps((value as Record<string, unknown>)[key]);
  return out;
}
