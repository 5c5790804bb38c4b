// The suite in a browser page: a tiny runner collects the tests, runs them in order, and reports.
import { conformance } from "./suite.ts";

interface Result {
  name: string;
  ok: boolean;
  error?: string;
}

/** Each test's bound: a test that hangs fails by name rather than taking the whole run past its timeout. */
const TEST_MS = 10_000;

/** Runs a test, failing it after TEST_MS. */
async function bounded(fn: () => Promise<void>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${TEST_MS} ms`)), TEST_MS);
  });
  try {
    await Promise.race([fn(), late]);
  } finally {
    clearTimeout(timer);
  }
}

async function run(targets: { name: string; url: string }[]): Promise<Result[]> {
  const tests: { name: string; fn: () => Promise<void> }[] = [];
  let prefix: string[] = [];
  const api = {
    describe(name: string, fn: () => void) {
      prefix.push(name);
      fn();
      prefix.pop();
    },
    test(name: string, fn: () => Promise<void>) {
      tests.push({ name: [...prefix, name].join(" > "), fn });
    },
  };
  for (const { name, url } of targets) {
    prefix = [`browser client -> ${name} server`];
    conformance(api, { url });
  }
  const results: Result[] = [];
  for (const t of tests) {
    try {
      await bounded(t.fn);
      results.push({ name: t.name, ok: true });
    } catch (err) {
      results.push({ name: t.name, ok: false, error: String((err as Error)?.stack ?? err) });
    }
  }
  return results;
}

(globalThis as { runConformance?: typeof run }).runConformance = run;
