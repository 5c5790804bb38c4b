/**
 * The chat example (examples/chat) in a real browser: Debian's Chromium driven by playwright-core.
 * A page without the login cookie is refused for good; two logged-in people talk in one room, see each
 * other typing, and see each other go "away" the moment a socket drops and come back when it resumes.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { type Browser, chromium, type Page } from "playwright-core";
import { JOIN, POST } from "../examples/chat/procedures.ts";
import { createClient } from "../src/index.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = `${import.meta.dir}/../test-artifacts`;
const WAIT = { timeout: 5000 };
let browser: Browser;
let chat: ReturnType<typeof Bun.spawn>;
let base = "";
/** What the server printed, read all along so its pipe never fills. */
let output = "";

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: apt-get install -y chromium (.ci/run does)`);
  chat = Bun.spawn([process.execPath, `${import.meta.dir}/../examples/chat/server.ts`], {
    env: { ...process.env, PORT: "0" },
    stdout: "pipe",
  });
  const reader = (chat.stdout as ReadableStream<Uint8Array>).getReader();
  const port = await new Promise<number>((resolve, reject) => {
    void (async () => {
      for (let read = await reader.read(); !read.done; read = await reader.read()) {
        output += new TextDecoder().decode(read.value);
        const port = /listening on http:\/\/localhost:(\d+)/.exec(output)?.[1];
        if (port) resolve(Number(port));
      }
      reject(new Error(`the chat server exited early: ${output}`));
    })();
  });
  base = `http://localhost:${port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
  });
}, 15_000);

afterAll(async () => {
  await browser?.close();
  chat?.kill();
  await chat?.exited;
});

/** A page in its own browser context (so its own cookie), logged in as `name`. */
async function visit(name: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  // Keeps the page's sockets in `window.sockets`, so a test can cut one without reaching into the client.
  await page.addInitScript(() => {
    const sockets: WebSocket[] = [];
    window.WebSocket = class extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        sockets.push(this);
      }
    };
    Object.assign(window, { sockets });
  });
  await page.goto(`${base}/login?name=${name}`);
  return page;
}

test("without the login cookie the page shows UNAUTHORIZED from onError, and stops trying", async () => {
  const sockets: unknown[] = [];
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("websocket", (ws) => sockets.push(ws));
  await page.goto(base);
  await page.getByTestId("error").filter({ hasText: "UNAUTHORIZED: log in first" }).waitFor(WAIT);
  expect(await page.getByTestId("state").getAttribute("data-state")).toBe("disconnected");
  // A client that would retry does so at once on "online"; a refused one stays put. Give it a second to try.
  await page.evaluate(() => window.dispatchEvent(new Event("online")));
  await page.waitForTimeout(1000);
  expect(sockets).toHaveLength(1);
  expect(await page.getByTestId("state").textContent()).toBe("disconnected");
  await context.close();
}, 10_000);

test("two people in a room: messages, typing, and presence that shows away at once and online on resume", async () => {
  const [ann, bob] = await Promise.all([visit("ann"), visit("bob")]);
  for (const page of [ann, bob]) {
    await page.getByTestId("state").and(page.locator('[data-state="connected"]')).waitFor(WAIT);
    await page.getByTestId("you").filter({ hasText: "you are" }).waitFor(WAIT);
  }
  // Both see both online.
  for (const page of [ann, bob]) {
    for (const name of ["ann", "bob"]) await page.locator(`[data-testid="person"][data-name="${name}"][data-state="online"]`).waitFor(WAIT);
  }

  // A message from one appears in the other, and the other way round.
  await ann.getByTestId("text").fill("hello from ann");
  await ann.getByTestId("text").press("Enter");
  await bob.getByTestId("message").filter({ hasText: "ann: hello from ann" }).waitFor(WAIT);
  await bob.getByTestId("text").fill("hi ann");
  await bob.getByTestId("send").click();
  await ann.getByTestId("message").filter({ hasText: "bob: hi ann" }).waitFor(WAIT);

  // Typing in one shows the typing line in the other.
  await bob.getByTestId("text").pressSequentially("typing so");
  await ann.getByTestId("typing").filter({ hasText: "bob is typing…" }).waitFor(WAIT);
  expect(await bob.getByTestId("typing").textContent()).toBe("");

  // Ann's page notes every state bob's entry takes, so a short "away" cannot slip by between two looks.
  await ann.evaluate(() => {
    const seen: string[] = [];
    const note = () => {
      const state = document.querySelector<HTMLElement>('[data-testid="person"][data-name="bob"]')?.dataset.state;
      if (state && state !== seen.at(-1)) seen.push(state);
    };
    note();
    Object.assign(window, { bobStates: seen });
    new MutationObserver(note).observe(document.querySelector('[data-testid="presence"]')!, {
      childList: true,
      subtree: true,
      attributes: true,
    });
  });
  // Drop bob's socket (not the client): the server keeps the session for the resume window, 30 s.
  const dropped = performance.now();
  await bob.evaluate(() => (window as unknown as { sockets: WebSocket[] }).sockets.at(-1)?.close());
  await ann.waitForFunction(() => (window as unknown as { bobStates: string[] }).bobStates.includes("away"), null, WAIT);
  expect(performance.now() - dropped).toBeLessThan(3000); // at once, not after the resume window
  // Bob's client reconnects by itself and resumes the same session: back to online, no re-join needed.
  await ann.waitForFunction(() => (window as unknown as { bobStates: string[] }).bobStates.join() === "online,away,online", null, WAIT);
  expect(await bob.evaluate(() => (window as unknown as { chatClient: { resumed: boolean } }).chatClient.resumed)).toBe(true);
  await bob.getByTestId("text").fill("back again");
  await bob.getByTestId("text").press("Enter");
  await ann.getByTestId("message").filter({ hasText: "bob: back again" }).waitFor(WAIT);

  mkdirSync(ARTIFACTS, { recursive: true });
  await ann.screenshot({ path: `${ARTIFACTS}/chat.png` });

  // Leaving the page ends bob's session (a browser leaving never resumes): he leaves ann's list.
  await bob.goto("about:blank");
  await ann.locator('[data-testid="person"][data-name="bob"]').waitFor({ state: "detached", ...WAIT });
  await Promise.all([ann.context().close(), bob.context().close()]);
}, 25_000);

test("posting to a room not joined is FORBIDDEN; the middleware counts calls and refuses a banned user", async () => {
  // A client in Bun, with the cookie a browser would send.
  class AsCarol extends WebSocket {
    constructor(url: string) {
      super(url, { headers: { Cookie: "user=carol" } } as never);
    }
  }
  const carol = createClient({ url: base, WebSocket: AsCarol, reconnect: false });
  expect((await carol.call(JOIN, "random")).you).toBe("carol");
  await carol.call(POST, { room: "random", text: "hi" });
  await expect(carol.call(POST, { room: "general", text: "sneaky" })).rejects.toMatchObject({
    code: "FORBIDDEN",
    message: "join general first",
  });
  carol.close();

  const stats = (await (await fetch(`${base}/stats`)).json()) as Record<string, { calls: number }>;
  expect(stats.join?.calls).toBeGreaterThanOrEqual(3);
  expect(stats.post?.calls).toBeGreaterThanOrEqual(5);
  expect(stats.typing?.calls).toBeGreaterThanOrEqual(1);

  const mallory = await visit("mallory");
  await mallory.getByTestId("error").filter({ hasText: "FORBIDDEN: mallory may not chat here" }).waitFor(WAIT);
  await mallory.context().close();
}, 10_000);
