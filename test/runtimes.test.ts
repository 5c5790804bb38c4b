/** The client outside Bun: real Node 20 with `ws`, against a real Bun server. */
import { afterAll, expect, test } from "bun:test";
import { build } from "esbuild";
import { exitWithin, startServer, waitFor } from "./helpers.ts";
import { ADD, ECHO } from "./procs.ts";

const srv = startServer();
afterAll(() => srv.stop());

test("a Node 20 client (WebSocket from ws) calls, is called, and exits after close()", async () => {
  await build({
    entryPoints: [`${import.meta.dir}/../src/index.ts`],
    bundle: true,
    format: "esm",
    platform: "node",
    packages: "external",
    outfile: `${import.meta.dir}/../test-artifacts/node/chatter.mjs`,
    logLevel: "silent",
  });
  srv.chatter.on(ADD, ({ a, b }) => a + b);
  const echoed: unknown[] = [];
  const node = Bun.spawn(["node", `${import.meta.dir}/fixtures/node-client.mjs`, srv.url], { stdout: "pipe", stderr: "pipe" });
  // Once it is connected, call it from the server.
  await waitFor(() => srv.chatter.connections.size > 0 || node.exitCode !== null, 5000, "the Node client to connect");
  const conn = srv.chatter.find(() => true);
  echoed.push(await conn?.call(ECHO, "from bun"));
  const exited = await exitWithin(node, 10_000);
  const out = await new Response(node.stdout).text();
  expect(exited, await new Response(node.stderr).text()).toBe(0);
  const result = JSON.parse(out);
  expect(result).toMatchObject({ sum: 42, bad: "VALIDATION", state: "connected" });
  expect(echoed).toEqual([{ node: expect.stringMatching(/^v20\./), x: "from bun" }]);
});
