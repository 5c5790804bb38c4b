import { Packr } from "msgpackr";

// Provisional; settled by bench/codec.ts.
const packr = new Packr({ useRecords: false, moreTypes: true, int64AsType: "bigint", mapsAsObjects: true });

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function decode(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}
