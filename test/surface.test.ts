/**
 * The published surface: every exported name is documented, and the built
 * type declarations name no internal class (the core, the engine, sessions,
 * topics...). The list of internal classes is read from src/, so a new one
 * is covered without touching this file.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const ENTRIES = ["index", "node", "deno", "react", "redis"];
const out = mkdtempSync(join(tmpdir(), "chatter-dts-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** @returns every file under a folder, recursively */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** @returns the names an entry file exports (values and types) */
function exportedNames(entry: string): string[] {
  const source = readFileSync(join(ROOT, "src", `${entry}.ts`), "utf8");
  const names: string[] = [];
  for (const [, list] of source.matchAll(/export (?:type )?\{([^}]*)\}/g)) {
    for (const part of (list as string).split(",")) {
      const name = part
        .replace(/\btype\b/, "")
        .trim()
        .split(/\s+as\s+/)
        .pop();
      if (name) names.push(name);
    }
  }
  return names;
}

const docs = [join(ROOT, "README.md"), ...filesUnder(join(ROOT, "docs"))].map((f) => readFileSync(f, "utf8")).join("\n");
const publicNames = new Set(ENTRIES.flatMap(exportedNames));

test("every name the package exports is documented in the README or docs/", () => {
  expect(publicNames.size).toBeGreaterThan(20);
  const undocumented = [...publicNames].filter((name) => !new RegExp(`\\b${name}\\b`).test(docs));
  expect(undocumented).toEqual([]);
});

test("the built .d.ts files name no internal class", async () => {
  const build = Bun.spawn(["npx", "tsdown", "--out-dir", out], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  expect(await build.exited, await new Response(build.stderr).text()).toBe(0);
  const internal = new Set<string>();
  for (const file of filesUnder(join(ROOT, "src"))) {
    // Declarations only: a comment may say "class" too.
    for (const [, name] of readFileSync(file, "utf8").matchAll(/^\s*(?:export\s+)?(?:abstract\s+)?class (\w+)/gm))
      internal.add(name as string);
  }
  for (const name of publicNames) internal.delete(name);
  expect(internal).toContain("ServerCore");
  expect(internal).toContain("Peer");
  const declarations = filesUnder(out).filter((f) => f.endsWith(".d.ts"));
  expect(declarations.map((f) => f.slice(out.length + 1))).toEqual(expect.arrayContaining(ENTRIES.map((e) => `${e}.d.ts`)));
  const leaks: string[] = [];
  for (const file of declarations) {
    const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, ""); // Comments may name anything.
    for (const name of internal) if (new RegExp(`\\b${name}\\b`).test(text)) leaks.push(`${name} in ${file.slice(out.length + 1)}`);
    // `private x;` in a declaration shows a member's name and invites use; `#private;` does not.
    for (const [line] of text.matchAll(/^\s*private \w+.*$/gm)) leaks.push(`${line.trim()} in ${file.slice(out.length + 1)}`);
  }
  expect(leaks).toEqual([]);
}, 60_000);
