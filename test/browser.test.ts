/**
 * The demo in a real browser: Debian's Chromium driven by playwright-core.
 * Two pages stay in sync, and both resync after the server restarts.
 */
import { afterAll, beforeAll, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { type Browser, chromium, type Page } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = `${import.meta.dir}/../test-artifacts`;
let browser: Browser;
let demo: ReturnType<typeof Bun.spawn> | undefined;

/** Starts `npm run demo`'s server; resolves with its port once it listens. */
async function startDemo(port = 0): Promise<number> {
  await stopDemo();
  demo = Bun.spawn([process.execPath, `${import.meta.dir}/../examples/counter/server.ts`], {
    env: { ...process.env, PORT: String(port) },
    stdout: "pipe",
  });
  const reader = (demo.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  while (!/listening on http:\/\/localhost:(\d+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`demo exited early: ${text}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return Number(/localhost:(\d+)/.exec(text)?.[1]);
}

async function stopDemo() {
  demo?.kill();
  await demo?.exited;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: apt-get install -y chromium (.ci/run does)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
  });
});

afterAll(async () => {
  await browser?.close();
  await stopDemo();
});

test("two pages stay in sync, and resync after the server restarts", async () => {
  const port = await startDemo();
  const url = `http://localhost:${port}/`;
  const [a, b] = [await browser.newPage(), await browser.newPage()];
  await Promise.all([a.goto(url), b.goto(url)]);
  for (const page of [a, b]) await page.getByTestId("state").filter({ hasText: "connected" }).waitFor();
  await waitText(a, "0");
  await waitText(b, "0");

  await a.getByTestId("increment").click();
  await a.getByTestId("increment").click();
  await waitText(b, "2");
  await b.getByTestId("decrement").click();
  await waitText(a, "1");

  // Restart the server on the same port: its in-memory count starts again at 0.
  await stopDemo();
  await waitState(a, "disconnected");
  await startDemo(port);
  await waitState(a, "connected");
  await waitState(b, "connected");
  await waitText(a, "0");
  await waitText(b, "0");
  await b.getByTestId("increment").click();
  await waitText(a, "1");

  mkdirSync(ARTIFACTS, { recursive: true });
  await a.screenshot({ path: `${ARTIFACTS}/counter.png` });
}, 30_000);

test("the React version of the page (chatter/react) stays in sync with the plain one", async () => {
  const port = await startDemo();
  const plain = await browser.newPage();
  const react = await browser.newPage();
  await plain.goto(`http://localhost:${port}/`);
  await react.goto(`http://localhost:${port}/react`);
  await waitState(plain, "connected");
  await waitState(react, "connected");
  await waitText(react, "0");
  await plain.getByTestId("increment").click();
  await waitText(react, "1");
  await react.getByTestId("increment").click();
  await react.getByTestId("increment").click();
  await waitText(plain, "3");
  await react.getByTestId("decrement").click();
  await waitText(plain, "2");
  await waitText(react, "2");
  await react.screenshot({ path: `${ARTIFACTS}/counter-react.png` });
}, 30_000);

async function waitText(page: Page, text: string) {
  await page.waitForFunction((t) => document.querySelector('[data-testid="count"]')?.textContent === t, text, { timeout: 10_000 });
}

async function waitState(page: Page, state: string) {
  await page.waitForFunction((s) => (document.querySelector('[data-testid="state"]') as HTMLElement)?.dataset.state === s, state, {
    timeout: 10_000,
  });
}
