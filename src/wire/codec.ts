/**
 * The payload codec: MessagePack, written and read by Chatter's own encoder
 * (pack.ts) and decoder (unpack.ts), on both ends. They carry exactly the
 * types PROTOCOL.md lists and write the same bytes msgpackr does with the
 * options PROTOCOL.md names, so either end may use msgpackr. They replaced
 * msgpackr (issue #16, figures in bench/codec-report.md): a browser's bundle
 * shrank by about 11 KB gzipped, and they measured as fast as msgpackr on the
 * server as well, so one codec serves both ends and no build has to choose.
 * Every message passes the guard (guard.ts) before a value is built.
 */
import { countValues, WireFormatError } from "./guard.ts";
import { pack, packKept } from "./pack.ts";
import { unpackAll } from "./unpack.ts";

export { WireFormatError } from "./guard.ts";

/**
 * @returns the MessagePack bytes of a value: a view into a shared buffer, valid until the value is dropped
 * @throws TypeError naming the type, for a value holding one the wire format does not carry (Error, RegExp, typed
 *   arrays but Uint8Array); WireFormatError for a value of more than MAX_VALUES values
 */
export const encode: (value: unknown) => Uint8Array = pack;

/** @returns the MessagePack bytes of a value that will be kept, in a right-sized buffer of their own */
export const encodeKept: (value: unknown) => Uint8Array = packKept;

/**
 * A frame that will be kept (for repeats or replay) as its own small buffer.
 * `encode` returns a view into a shared 8 KB buffer, and keeping the view
 * would keep that whole buffer alive.
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
 * @throws WireFormatError for bytes the wire format does not carry; Error for a map key that cannot be a property name
 */
export function decode(bytes: Uint8Array): unknown {
  if (countValues(bytes, 1) !== 1) throw new WireFormatError("not exactly one value");
  return unpackAll(bytes)[0];
}

/**
 * @param maxValues - the most values the bytes may hold; past it nothing is decoded
 * @returns every value of a run of MessagePack values back to back
 * @throws TooManyValues past `maxValues`; WireFormatError for bytes the wire format does not carry; Error for a map
 *   key that cannot be a property name
 */
export function decodeAll(bytes: Uint8Array, maxValues = Infinity): unknown[] {
  const count = countValues(bytes, maxValues);
  if (count === 0) throw new WireFormatError("empty message");
  if (count > maxValues) throw new TooManyValues(`more than ${maxValues} values`);
  return unpackAll(bytes);
}
