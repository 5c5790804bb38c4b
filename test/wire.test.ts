import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { decode, encode } from "../src/wire/codec.ts";
import { decodeFrames, encodeFrame, FrameType } from "../src/wire/frames.ts";

const roundTrip = (v: unknown) => decode(encode(v));

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

  test("undefined and null stay distinct, in objects and arrays", () => {
    const out = roundTrip({ a: undefined, b: null, list: [undefined, null] }) as Record<string, unknown>;
    expect("a" in out).toBe(true);
    expect(out.a).toBeUndefined();
    expect(out.b).toBeNull();
    expect(out.list).toEqual([undefined, null]);
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
});

describe("frames", () => {
  test("each frame type encodes and decodes to itself", () => {
    const frames = [
      [FrameType.Hello, 1, "cid", "sid", null, 0, 1],
      [FrameType.Hello, 1, "cid", "sid", "token", 12, 3],
      [FrameType.Welcome, "sid", "token", false, 1, 1048576],
      [FrameType.Call, 7, "add", { a: 1 }, 30000, 5],
      [FrameType.Result, 7, 42],
      [FrameType.Error, 7, { code: "TIMEOUT", message: "m" }],
      [FrameType.Event, 3, "note", "hi"],
      [FrameType.Cancel, 7],
      [FrameType.Ping, 4],
      [FrameType.Pong, 2],
    ] as const;
    for (const f of frames) expect(decodeFrames(encodeFrame(f as never))).toEqual([f as never]);
  });

  test.each([
    ["empty input", new Uint8Array(0), "undecodable payload"],
    ["truncated", encodeFrame([FrameType.Call, 1, "add", { a: 1 }, 0, 1]).subarray(0, 8), "undecodable payload"],
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
    expect(() => decodeFrames(both.subarray(0, both.length - 1))).toThrow("undecodable payload");
  });

  test("random bytes never crash the decoder: they decode or throw PROTOCOL", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeFrames(bytes);
        } catch (err) {
          expect((err as { code?: string }).code).toBe("PROTOCOL");
        }
      }),
      { numRuns: 5000 },
    );
  });
});
