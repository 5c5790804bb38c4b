import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { C1, Packr, Unpackr } from "msgpackr";
import { ChatterError } from "../src/errors.ts";
import { decode, encode, encodeKept } from "../src/wire/codec.ts";
import { decodeFrames, encodeFrame, FrameType, MAX_FRAMES_PER_MESSAGE } from "../src/wire/frames.ts";
import { countValues, MAX_VALUES, WireFormatError } from "../src/wire/guard.ts";

const roundTrip = (v: unknown) => decode(encode(v));

/** What decodeFrames threw, or undefined. */
function thrownBy(bytes: Uint8Array, maxFrames?: number): unknown {
  try {
    decodeFrames(bytes, maxFrames);
  } catch (err) {
    return err;
  }
}
const protocolError = (message: string) => ({ code: "PROTOCOL", message: `malformed frame: ${message}` });

describe("codec", () => {
  test("Uint8Array travels as bytes, not base64", () => {
    const bytes = new Uint8Array([0, 1, 254, 255]);
    const out = roundTrip({ bytes }) as { bytes: Uint8Array };
    expect(out.bytes).toBeInstanceOf(Uint8Array);
    expect([...out.bytes]).toEqual([0, 1, 254, 255]);
    // The encoded frame carries the raw bytes in a row.
    expect(Buffer.from(encode(bytes)).includes(Buffer.from([0, 1, 254, 255]))).toBe(true);
  });

  test("Date, Set, bigint and nested objects round-trip", () => {
    const value = {
      when: new Date("2026-11-28T05:00:00.123Z"),
      tags: new Set(["a", 1, null]),
      small: 5n,
      big: 2n ** 100n,
      negative: -(2n ** 63n),
      nested: { a: [1, { b: [true, "x", 1.5] }], empty: {} },
    };
    expect(roundTrip(value)).toEqual(value);
    expect(typeof (roundTrip(5n) as bigint)).toBe("bigint");
  });

  test("Map round-trips as a Map, with any keys, at any depth, next to plain objects", () => {
    const inner = new Map<unknown, unknown>([[1n, new Date(0)]]);
    const value = {
      m: new Map<unknown, unknown>([
        ["k", { plain: true }],
        [2, inner],
        [{ obj: 1 }, [new Map([["x", 1]])]],
      ]),
      plain: { k: 1 },
    };
    const out = roundTrip(value) as typeof value;
    expect(out.m).toBeInstanceOf(Map);
    expect(out.plain).toEqual({ k: 1 });
    expect(out.plain).not.toBeInstanceOf(Map);
    expect(out).toEqual(value);
    expect(roundTrip(new Set([new Map([[1, 2]])]))).toEqual(new Set([new Map([[1, 2]])]));
  });

  test("ArrayBuffer round-trips; MessagePack bin (as other encoders write bytes) arrives as a Uint8Array", () => {
    const out = roundTrip(new Uint8Array([1, 2, 3]).buffer);
    expect(out).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(out as ArrayBuffer)]).toEqual([1, 2, 3]);
    const bin = decode(new Uint8Array([0xc4, 2, 7, 8]));
    expect(bin).toBeInstanceOf(Uint8Array);
    expect([...(bin as Uint8Array)]).toEqual([7, 8]);
  });

  test("undefined and null stay distinct, in objects and arrays", () => {
    const out = roundTrip({ a: undefined, b: null, list: [undefined, null] }) as Record<string, unknown>;
    expect("a" in out).toBe(true);
    expect(out.a).toBeUndefined();
    expect(out.b).toBeNull();
    expect(out.list).toEqual([undefined, null]);
  });

  test("a string that starts with U+FEFF keeps it, as a value and as a key, short and long", () => {
    const long = `\uFEFF${"é".repeat(100)}`;
    const value = ["\uFEFF", "\uFEFFhi", long, { "\uFEFF": 1, "\uFEFFk": 2 }, new Map([["\uFEFF", 3]])];
    expect(roundTrip(value)).toEqual(value);
  });

  test("a __proto__ key never reaches a prototype", () => {
    const hostile = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}');
    const out = roundTrip(hostile) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(out.polluted).toBeUndefined();
    expect(out.ok).toBe(1);
  });

  test("random values round-trip (property-based; -0 arrives as 0, as in JSON)", () => {
    // __proto__ keys are renamed on purpose; the test above covers them.
    const values = fc.jsonValue().filter((v) => !JSON.stringify(v).includes('"__proto__"'));
    fc.assert(
      fc.property(values, (v) => {
        expect(JSON.stringify(roundTrip(v))).toBe(JSON.stringify(v));
      }),
      { numRuns: 500 },
    );
  });

  test("the map-key cache keeps copies of its keys, not views that would keep whole messages alive", () => {
    Bun.gc(true);
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 2000; i++) {
      const bytes = encode({ [`k${i}`]: 1, pad: new Uint8Array(64 * 1024) });
      // As Bun hands a message to the server: a Buffer, whose slice() is a view.
      const message = Buffer.alloc(bytes.byteLength);
      message.set(bytes);
      decode(message);
    }
    Bun.gc(true);
    // Views into the messages kept some hundred of these 64 KB buffers alive (6 MB).
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(2_000_000);
  });

  test("encodeKept writes the same bytes as encode, in a right-sized buffer of their own, small or large", () => {
    const values = fc.oneof(fc.jsonValue(), fc.uint8Array({ maxLength: 600 }), fc.string({ minLength: 200, maxLength: 400 }));
    fc.assert(
      fc.property(values, (v) => {
        const kept = encodeKept(v);
        const view = encode(v); // made after: had encodeKept left its bytes in use, this would write past them
        expect(kept.buffer.byteLength).toBe(kept.byteLength);
        expect([...kept]).toEqual([...view]);
        expect([...encodeKept(v)]).toEqual([...kept]);
      }),
      { numRuns: 300 },
    );
  });
});

const validFrames = [
  [FrameType.Hello, 1, "cid", "sid", null, 0, 1],
  [FrameType.Hello, 1, "cid", "sid", "token", 12, 3],
  [FrameType.Welcome, "sid", "token", false, 1, 1048576],
  [FrameType.Call, 7, "add", { a: 1, when: new Date(0), tags: new Set(["x"]), bytes: new Uint8Array([1]) }, 30000, 5],
  [FrameType.Result, 7, new Map<unknown, unknown>([[1n, undefined]])],
  [FrameType.Error, 7, { code: "TIMEOUT", message: "m" }],
  [FrameType.Event, 3, "note", "hi"],
  [FrameType.Cancel, 7],
  [FrameType.Ping, 4],
  [FrameType.Pong, 2],
  [FrameType.Call, 8, "count", 10, 0, 5, 64],
  [FrameType.Item, 8, 0, { token: "hi" }],
  [FrameType.Credit, 8, 32, 96],
] as const;

describe("frames", () => {
  test("each frame type encodes and decodes to itself", () => {
    for (const f of validFrames) expect(decodeFrames(encodeFrame(f as never))).toEqual([f as never]);
  });

  test.each([
    ["empty input", new Uint8Array(0), "empty message"],
    ["truncated", encodeFrame([FrameType.Call, 1, "add", { a: 1 }, 0, 1]).subarray(0, 8), "truncated value"],
    ["a map key that is an array", new Uint8Array([0x91, 0x81, 0x91, 0x01, 0x02]), "undecodable payload"],
    ["not an array", encode({ type: 3 }), "not a frame array"],
    ["an empty array", encode([]), "not a frame array"],
    ["an unknown type", encode([42]), "unknown frame type 42"],
    ["a CALL with a string id", encode([3, "1", "add", null, 0, 1]), "CALL fields"],
    ["a CALL without its watermark", encode([3, 1, "add", null, 0]), "CALL fields"],
    ["a CALL with a negative id", encode([3, -1, "add", null, 0, 1]), "CALL fields"],
    ["a RESULT without a value", encode([4, 1]), "RESULT fields"],
    ["an ERROR without an object", encode([5, 1, "oops"]), "ERROR fields"],
    ["an EVENT with a numeric name", encode([6, 1, 2, null]), "EVENT fields"],
    ["a HELLO with a numeric client id", encode([1, 1, 5, "s", null, 0, 1]), "HELLO fields"],
    ["a HELLO with a bad counter", encode([1, 1, "c", "s", null, -1, 1]), "HELLO counters"],
  ])("%s is a PROTOCOL error naming what is wrong", (_what, bytes, message) => {
    let caught: unknown;
    try {
      decodeFrames(bytes);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: "PROTOCOL", message: expect.stringContaining(message) });
  });

  test("a message may carry several frames back to back; one bad frame makes the whole message a PROTOCOL error", () => {
    const a = encodeFrame([FrameType.Call, 1, "add", { a: 1 }, 0, 1]);
    const b = encodeFrame([FrameType.Cancel, 1]);
    const both = new Uint8Array([...a, ...b]);
    expect(decodeFrames(both)).toEqual([
      [FrameType.Call, 1, "add", { a: 1 }, 0, 1],
      [FrameType.Cancel, 1],
    ]);
    expect(() => decodeFrames(new Uint8Array([...a, ...encode({ not: "a frame" })]))).toThrow("not a frame array");
    expect(() => decodeFrames(both.subarray(0, both.length - 1))).toThrow("truncated value");
  });

  test("random bytes never crash the decoder: they decode or throw PROTOCOL with a fixed phrase", () => {
    // Every reason the decoder gives; msgpackr's own messages (which quote bytes and internals) never reach the peer.
    const phrase = new RegExp(
      "^malformed frame: (undecodable payload|truncated value|empty message|not a frame array" +
        "|byte 0xc1 is not part of the wire format" +
        "|extension type 0x[0-9a-f]{2}( \\([A-Za-z0-9 -]+\\))? (is not part of the wire format|in a form the wire format does not use)" +
        "|unknown frame type (-?[0-9.]+(e[-+][0-9]+)?|NaN|-?Infinity|null|undefined|\\((an array|an object|a string|a boolean|a bigint)\\))" +
        "|(HELLO|WELCOME|CALL|RESULT|ERROR|EVENT|CANCEL|PING/PONG|REFUSED|ITEM|CREDIT) (fields|token|counters|id|client key|client id|credit))$",
    );
    const mutated = fc
      .tuple(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.nat(), fc.constantFrom(...validFrames.map((f) => encodeFrame(f as never))))
      .map(([noise, at, frame]) => {
        const bytes = new Uint8Array(frame);
        bytes.set(noise.subarray(0, bytes.length - (at % bytes.length)), at % bytes.length);
        return bytes;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), (bytes) => {
        const err = thrownBy(bytes);
        if (err === undefined) return;
        expect(err).toBeInstanceOf(ChatterError);
        expect(err).toMatchObject({ code: "PROTOCOL", message: expect.stringMatching(phrase) });
      }),
      { numRuns: 5000 },
    );
  });

  test.each([
    ["a map decoding to an object whose toString is not a function", encode([{ toString: 1 }]), "(an object)"],
    ["an object without a prototype", encode([Object.create(null)]), "(an object)"],
    ["a string", encode(["call"]), "(a string)"],
    ["a wide bigint", encode([2n ** 100n]), "(a bigint)"],
  ])("a frame type that is %s is a PROTOCOL error naming only its type", (_what, bytes, named) => {
    expect(thrownBy(bytes)).toMatchObject(protocolError(`unknown frame type ${named}`));
  });
});

describe("the wire format carries exactly the types PROTOCOL.md lists", () => {
  // Encoders that write what Chatter's encoder refuses: msgpackr with its other extensions on.
  const everything = new Packr({ moreTypes: true, structuredClone: true, useRecords: false });
  const records = new Packr({ useRecords: true });
  const bundled = new Packr({ useRecords: false, bundleStrings: true });
  const call = (input: unknown, packr = everything) => packr.pack([FrameType.Call, 1, "add", input, 0, 1]);
  const shared = { a: 1 };

  test.each([
    ["an Error", call(new TypeError("boom")), "extension type 0x65 (Error) is not part of the wire format"],
    ["a RegExp", call(/a+$/g), "extension type 0x78 (RegExp) is not part of the wire format"],
    ["an Int8Array", call(new Int8Array(2)), "extension type 0x74 (Int8Array) is not part of the wire format"],
    ["a Uint8ClampedArray", call(new Uint8ClampedArray(2)), "extension type 0x74 (Uint8ClampedArray) is not part of the wire format"],
    ["a Float32Array", call({ deep: [new Float32Array(2)] }), "extension type 0x74 (Float32Array) is not part of the wire format"],
    ["a BigUint64Array", call(new BigUint64Array(1)), "extension type 0x74 (BigUint64Array) is not part of the wire format"],
    ["a DataView", call(new DataView(new ArrayBuffer(2))), "extension type 0x74 (DataView) is not part of the wire format"],
    [
      "an empty typed array extension",
      new Uint8Array([0xc7, 0x00, 0x74]),
      "extension type 0x74 (typed array) is not part of the wire format",
    ],
    [
      "a structured-clone reference",
      call([shared, shared]),
      "extension type 0x69 (structured-clone reference) is not part of the wire format",
    ],
    [
      "a structured-clone pointer",
      new Uint8Array([0x91, 0xd6, 0x70, 0, 0, 0, 0]),
      "extension type 0x70 (structured-clone pointer) is not part of the wire format",
    ],
    ["a record definition", call([{ a: 1 }, { a: 2 }], records), "extension type 0x72 (record definition) is not part of the wire format"],
    [
      "a two-byte record definition",
      new Uint8Array([0xd5, 0x72, 0x40, 0x00, 0x91, 0xa1, 0x61, 0x01]),
      "extension type 0x72 (record definition) is not part of the wire format",
    ],
    [
      "bundled strings",
      call("a string long enough to be bundled".repeat(3), bundled),
      "extension type 0x62 (bundled strings) is not part of the wire format",
    ],
    ["an unknown extension", new Uint8Array([0x91, 0xd4, 0x05, 0x00]), "extension type 0x05 is not part of the wire format"],
    [
      "a Set not written as fixext 1",
      new Uint8Array([0xd5, 0x73, 0, 0, 0x90]),
      "extension type 0x73 (Set) in a form the wire format does not use",
    ],
    ["the never-used byte 0xc1", new Uint8Array([0x92, 0x03, 0xc1]), "byte 0xc1 is not part of the wire format"],
    ["an array claiming 2^32-1 items", new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]), "truncated value"],
  ])("%s is refused as a PROTOCOL error with a fixed phrase", (_what, bytes, message) => {
    expect(thrownBy(bytes)).toMatchObject(protocolError(message));
  });

  test("a refused type after a good frame makes the whole message a PROTOCOL error; decode() refuses too", () => {
    const message = new Uint8Array([...encodeFrame([FrameType.Cancel, 1]), ...call(/x/)]);
    expect(thrownBy(message)).toMatchObject(protocolError("extension type 0x78 (RegExp) is not part of the wire format"));
    expect(() => decode(everything.pack(new Error("x")))).toThrow("extension type 0x65 (Error) is not part of the wire format");
  });

  test("many record definitions are refused before msgpackr compiles a reader for any", () => {
    // The attack: fresh record shapes, each used often enough that msgpackr builds a reader with new Function.
    const rows = Array.from({ length: 2000 }, (_, i) => Array.from({ length: 4 }, () => ({ [`k${i}`]: i })));
    expect(thrownBy(call(rows, records))).toMatchObject(
      protocolError("extension type 0x72 (record definition) is not part of the wire format"),
    );
  });

  test.each([
    ["an Error", { e: new Error("x") }, "an Error is not part of the wire format; send its fields as a plain object"],
    ["a RegExp", [1, /x/], "a RegExp is not part of the wire format; send its source and flags"],
    ["a Float32Array", new Float32Array(1), "a Float32Array is not part of the wire format; send its bytes as a Uint8Array"],
    ["a Uint8ClampedArray in a Set", new Set([new Uint8ClampedArray(1)]), "a Uint8ClampedArray is not part of the wire format"],
    ["a DataView as a Map key", new Map([[new DataView(new ArrayBuffer(1)), 1]]), "a DataView is not part of the wire format"],
    [
      "a RegExp in a class instance",
      [
        new (class Filter {
          re = /x/;
        })(),
      ],
      "a RegExp is not part of the wire format",
    ],
    [
      "what a class's toJSON returns",
      [
        new (class Report {
          toJSON = () => new Error("x");
        })(),
      ],
      "an Error is not part of the wire format",
    ],
    [
      "what a toJSON returns, next to an own constructor key",
      { constructor: null, toJSON: () => /x/ },
      "a RegExp is not part of the wire format",
    ],
  ])("the encoder refuses %s up front, naming the type", (_what, value, message) => {
    expect(() => encode(value)).toThrow(message);
  });

  test("the encoder keeps every type the wire format carries, and Buffer travels as bytes", () => {
    const value = {
      b: Buffer.from([1, 2]),
      u: new Uint8Array([3]),
      a: new ArrayBuffer(1),
      d: new Date(5),
      s: new Set([1]),
      m: new Map([[{}, 1]]),
    };
    const out = roundTrip(value) as typeof value;
    expect([...out.b]).toEqual([1, 2]);
    expect(out.u).toBeInstanceOf(Uint8Array);
    expect(out.a).toBeInstanceOf(ArrayBuffer);
    expect(out.m).toEqual(value.m);
  });
});

describe("the guard (src/wire/guard.ts)", () => {
  // msgpackr with every extension it has, as a peer could write them.
  const raw = new Unpackr({ useRecords: false, moreTypes: true, int64AsType: "bigint" });
  const refused = (v: unknown): boolean => {
    if (typeof v !== "object" || v === null || v instanceof Uint8Array || v instanceof ArrayBuffer || v instanceof Date) return false;
    if (v instanceof Error || v instanceof RegExp || ArrayBuffer.isView(v) || v === C1) return true;
    const items = v instanceof Map ? [...v].flat() : v instanceof Set ? [...v] : Object.values(v);
    return items.some(refused);
  };
  const rich = validFrames.map((f) => encodeFrame(f as never));
  const hostile = [[/x/], [new Error("e")], [new Float64Array(1)], [{ a: 1 }, { a: 1 }]].map((v) =>
    new Packr({ moreTypes: true, structuredClone: true, useRecords: true }).pack([FrameType.Result, 1, v]),
  );
  const mutated = fc
    .tuple(fc.constantFrom(...rich, ...hostile), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat())
    .map(([seed, flips, cut]) => {
      const copy = Uint8Array.from(seed.subarray(0, Math.max(1, seed.length - (cut % 3))));
      for (const [at, byte] of flips) copy[at % copy.length] = byte;
      return copy;
    });

  test("agrees with msgpackr on where each value ends, and lets through none of the refused types", () => {
    fc.assert(
      fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 48 })), (bytes) => {
        let count: number;
        try {
          count = countValues(bytes, Infinity);
        } catch (err) {
          expect(err).toBeInstanceOf(WireFormatError);
          return;
        }
        let values: unknown[];
        try {
          values = raw.unpackMultiple(bytes) as unknown[];
        } catch {
          return; // malformed in a way only msgpackr sees (a map key that is an array, say): still refused
        }
        expect(values).toHaveLength(count);
        expect(values.some(refused)).toBe(false);
      }),
      { numRuns: 20_000 },
    );
  });
});

describe("frames per message", () => {
  const cancels = (n: number) => {
    const frame = encodeFrame([FrameType.Cancel, 1]);
    const out = new Uint8Array(frame.length * n);
    for (let i = 0; i < n; i++) out.set(frame, i * frame.length);
    return out;
  };

  test("MAX_FRAMES_PER_MESSAGE is 1000; a message may hold that many frames", () => {
    expect(MAX_FRAMES_PER_MESSAGE).toBe(1000);
    expect(decodeFrames(cancels(1000), MAX_FRAMES_PER_MESSAGE)).toHaveLength(1000);
    expect(decodeFrames(cancels(3000))).toHaveLength(3000); // no cap unless one is given
  });

  test("one frame more is a LIMIT error naming the count and the limit", () => {
    expect(thrownBy(cancels(1001), MAX_FRAMES_PER_MESSAGE)).toMatchObject({
      code: "LIMIT",
      message: "message holds more than 1000 frames (maxFramesPerMessage)",
    });
    expect(thrownBy(cancels(3), 2)).toMatchObject({
      code: "LIMIT",
      message: "message holds more than 2 frames (maxFramesPerMessage)",
    });
  });

  test("decoding stops once the count passes the limit: bytes after that frame are never read", () => {
    // 98,000 CALL frames in a 1 MiB message held the event loop for seconds; garbage after frame 1001 shows none of it is read.
    const calls = new Uint8Array(cancels(1001).length + 1);
    calls.set(cancels(1001));
    calls[calls.length - 1] = 0xc1;
    expect(thrownBy(calls, MAX_FRAMES_PER_MESSAGE)).toMatchObject({ code: "LIMIT" });
    expect(thrownBy(calls)).toMatchObject(protocolError("byte 0xc1 is not part of the wire format"));
    const call = encodeFrame([FrameType.Call, 1, "add", null, 0, 1]);
    const flood = new Uint8Array(call.length * 98_000);
    for (let i = 0; i < 98_000; i++) flood.set(call, i * call.length);
    expect(thrownBy(flood, MAX_FRAMES_PER_MESSAGE)).toMatchObject({ code: "LIMIT" });
  });
});

test("a bigint wider than the wire format's 8000 bits is refused on both ends; one just inside travels", () => {
  const wide = new Packr({ useBigIntExtension: true, useRecords: false }).pack([FrameType.Call, 1, "echo", 2n ** 100_000n, 0, 1]);
  expect(() => decodeFrames(Uint8Array.from(wide))).toThrow(/bigint of \d+ bytes is over the wire format's 1024/);
  expect(() => encode(-(2n ** 8001n))).toThrow(/wider than 8000 bits/);
  expect(decodeFrames(encodeFrame([FrameType.Result, 1, 2n ** 7999n]))[0]).toEqual([FrameType.Result, 1, 2n ** 7999n]);
});

test("a message holds at most MAX_VALUES values, nested ones included; the encoder refuses more up front", () => {
  const maps = new Packr({ useRecords: false }).pack([FrameType.Call, 1, "echo", Array.from({ length: 1_000_000 }, () => ({})), 0, 1]);
  expect(() => decodeFrames(Uint8Array.from(maps))).toThrow(`message holds more than ${MAX_VALUES} values`);
  expect(() => encode(new Array(MAX_VALUES + 1).fill(1))).toThrow(`more than ${MAX_VALUES} values`);
  expect(decodeFrames(encodeFrame([FrameType.Result, 1, new Array(100_000).fill(1)]))).toHaveLength(1);
});
