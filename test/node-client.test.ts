/** The client on real Node 20 with `ws`, where a socket closed while still connecting emits an 'error' that must not crash. */
import { afterAll, expect, test } from "bun:test";
import { build } from "esbuild";
import { exitWithin, waitFor } from "./helpers.ts";

const ROOT = `${import.meta.dir}/..`;
const BUNDLE = `${ROOT}/test-artifacts/node-client/chatter.mjs`;

// Run from the repo root, so `ws` resolves from its node_modules. Told to stop on stdin, it closes the client and exits by itself.
const SCRIPT = `
import WebSocket from "ws";
import { createClient } from ${JSON.stringify(`file://${BUNDLE}`)};
const client = createClient({ url: process.argv[1], WebSocket, connectTimeout: 200, reconnect: { minDelay: 10, maxDelay: 50 } });
process.stdin.once("data", () => {
  client.close();
  process.stdin.destroy();
});
`;

// Accepts every connection and never answers it: each socket stays in CONNECTING until the client's timeout.
let accepted = 0;
const silent = Bun.listen({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    open: () => void accepted++,
    data() {},
  },
});
afterAll(() => silent.stop(true));

test("a Node 20 client lives through connect timeouts on a server that never answers, then exits 0 when closed", async () => {
  await build({
    entryPoints: [`${ROOT}/src/index.ts`],
    bundle: true,
    format: "esm",
    platform: "node",
    packages: "external",
    outfile: BUNDLE,
  });
  const node = Bun.spawn(["node", "--input-type=module", "-e", SCRIPT, `ws://127.0.0.1:${silent.port}`], {
    cwd: ROOT,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  // Four connections mean at least three timeouts fired on sockets still connecting.
  await waitFor(() => accepted >= 4 || node.exitCode !== null, 8000, "four connection attempts");
  const aliveAfterTimeouts = node.exitCode === null;
  node.stdin.write("close\n");
  await node.stdin.end();
  const exited = await exitWithin(node, 5000);
  const stderr = await new Response(node.stderr).text();
  expect(aliveAfterTimeouts, stderr).toBe(true);
  expect(exited, stderr).toBe(0);
  expect(accepted).toBeGreaterThanOrEqual(4);
});
