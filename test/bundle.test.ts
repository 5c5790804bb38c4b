/** The browser client's bundle holds no server or Node code, and its stream code loads only when a stream does. */
import { expect, test } from "bun:test";
import { measureClientBundle } from "../bench/client-bundle.ts";

const STREAM_CODE = [
  "src/engine/stream-calls.ts",
  "src/engine/stream-reader.ts",
  "src/engine/stream-writers.ts",
  "src/engine/stream-writer.ts",
];

test("a browser bundle of the client pulls in no server or Node code", async () => {
  const { inputs, lazy, gzip } = await measureClientBundle();
  const files = [...Object.keys(inputs), ...Object.keys(lazy.inputs)];
  expect(
    files.filter((f) => f.startsWith("src/server/") || f === "src/node.ts" || f.startsWith("node:") || f.includes("node_modules/ws/")),
  ).toEqual([]);
  expect(files).toContain("src/client/client.ts");
  expect(gzip).toBeGreaterThan(0);
});

test("the stream code is out of what an app loads before its first call, in chunks loaded by the first stream", async () => {
  const { inputs, lazy } = await measureClientBundle();
  expect(Object.keys(inputs).filter((f) => STREAM_CODE.includes(f))).toEqual([]);
  expect(Object.keys(lazy.inputs).sort()).toEqual([...STREAM_CODE].sort());
  expect(lazy.files).toHaveLength(2); // One for reading, one for writing.
});
