/**
 * The conformance matrix: the fixture server on Bun and on Node (each in its
 * own process), exercised by the same suite from a Bun client (here), a
 * Node 20 client (node --test) and a browser client (Chromium).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { bundleForNode, startFixtureServers } from "./conformance/servers.ts";
import { conformance, conformanceTestCount } from "./conformance/suite.ts";
import { upgradeStatus } from "./helpers.ts";

const servers = await startFixtureServers();
afterAll(() => {
  for (const s of servers) s.stop();
});
const targets = servers.map(({ name, url }) => ({ name, url }));
/** Every runner must run the whole suite once per server. */
const expectedTests = targets.length * conformanceTestCount();

for (const { name, url } of targets) {
  describe(`bun client -> ${name} server`, () => conformance({ describe, test }, { url }));
}

describe("node 20 client", () => {
  test("passes the suite against every server (node --test)", async () => {
    const runner = await bundleForNode(`${import.meta.dir}/conformance/node-runner.ts`, "node-runner");
    const proc = Bun.spawn(["node", "--test", "--test-reporter=spec", runner], {
      env: { ...process.env, CONFORMANCE_TARGETS: JSON.stringify(targets) },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect(code, `${out}\n${err}`).toBe(0);
    const passed = Number(/ℹ pass (\d+)/.exec(out)?.[1]);
    expect(passed).toBe(expectedTests);
    expect(out).toContain("ℹ fail 0");
  }, 60_000);
});

describe("browser client", () => {
  test("passes the suite against every server (Chromium)", async () => {
    const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
    if (!existsSync(chromiumPath)) throw new Error(`no browser at ${chromiumPath}: apt-get install -y chromium (.ci/run does)`);
    const bundle = await build({
      entryPoints: [`${import.meta.dir}/conformance/browser-runner.ts`],
      bundle: true,
      format: "esm",
      platform: "browser",
      write: false,
      logLevel: "silent",
    });
    const script = bundle.outputFiles[0]?.text ?? "";
    const page = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req) =>
        new URL(req.url).pathname === "/runner.js"
          ? new Response(script, { headers: { "Content-Type": "text/javascript" } })
          : new Response('<!doctype html><script type="module" src="/runner.js"></script>', { headers: { "Content-Type": "text/html" } }),
    });
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
    });
    try {
      const tab = await browser.newPage();
      await tab.goto(`http://127.0.0.1:${page.port}/`);
      await tab.waitForFunction(() => "runConformance" in globalThis);
      const results = (await tab.evaluate(
        (t) => (globalThis as unknown as { runConformance(t: unknown): Promise<unknown> }).runConformance(t),
        targets,
      )) as {
        name: string;
        ok: boolean;
        error?: string;
      }[];
      expect(results.filter((r) => !r.ok)).toEqual([]);
      expect(results.length).toBe(expectedTests);
    } finally {
      await browser.close();
      page.stop(true);
    }
  }, 60_000);
});

describe("node adapter specifics", () => {
  const node = () => servers.find((s) => s.name === "node")!.url;
  test("upgrades only on its path, and refuses with getConnectionData's status", async () => {
    const base = node().replace("/chatter", "");
    expect(await upgradeStatus(`${base}/chatter`)).toBe(101);
    expect(await upgradeStatus(`${base}/chatter?tag=deny`)).toBe("UNAUTHORIZED");
    expect(await upgradeStatus(`${base}/elsewhere`).catch(() => "closed")).toBe("closed");
  });
});
