/**
 * The payload codec: MessagePack through msgpackr, chosen by measurement
 * (bench/codec.ts; figures in PROTOCOL.md). It keeps Uint8Array, Date, Set,
 * bigint and undefined as they are. Map needs help, below.
 */
import { addExtension, Packr } from "msgpackr";

const packr = new Packr({
  useRecords: false, // plain maps: records re-parse their definitions per message and decode small frames 3.5x slower
  moreTypes: true, // Uint8Array and other typed arrays as themselves
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

/** @returns the MessagePack bytes of a value */
export function encode(value: unknown): Uint8Array {
  return packr.pack(hasMap(value) ? swapMaps(value) : value);
}

/**
 * A frame that will be kept (for repeats or replay) as its own small buffer.
 * `encode` returns a view into msgpackr's shared 8 KB buffer, and keeping the
 * view would keep that whole buffer alive.
 * @returns a right-sized copy
 */
export function keep(frame: Uint8Array): Uint8Array {
  return new Uint8Array(frame);
}

/** @returns the value; throws on malformed bytes */
export function decode(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/** @returns every value of a run of MessagePack values back to back; throws on malformed bytes */
export function decodeAll(bytes: Uint8Array): unknown[] {
  if (bytes.byteLength === 0) throw new Error("empty message");
  return packr.unpackMultiple(bytes) as unknown[];
}

const isPlain = (v: object) => {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};

/** A cheap walk that allocates nothing: most payloads hold no Map and are packed as they are. */
function hasMap(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (value instanceof Map) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (hasMap(item)) return true;
    return false;
  }
  if (value instanceof Set) {
    for (const item of value) if (hasMap(item)) return true;
    return false;
  }
  if (!isPlain(value)) return false;
  for (const key in value) if (hasMap((value as Record<string, unknown>)[key])) return true;
  return false;
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
