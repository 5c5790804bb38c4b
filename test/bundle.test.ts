/** The browser client's bundle holds no server or Node code. */
import { expect, test } from "bun:test";
import { measureClientBundle } from "../bench/client-bundle.ts";

test("a browser bundle of the client pulls in no server or Node code", async () => {
  const { inputs, gzip } = await measureClientBundle();
  const files = Object.keys(inputs);
  expect(
    files.filter((f) => f.startsWith("src/server/") || f === "src/node.ts" || f.startsWith("node:") || f.includes("node_modules/ws/")),
  ).toEqual([]);
  expect(files).toContain("src/client/client.ts");
  expect(gzip).toBeGreaterThan(0);
});
