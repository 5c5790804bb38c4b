/** Starts the fixture server on each adapter, each in its own process: Bun, Node 20 through chatter/node, and Deno through chatter/deno. */
import { build } from "esbuild";
import { readUntil } from "../processes.ts";

const ARTIFACTS = `${import.meta.dir}/../../test-artifacts/conformance`;

/** Bundles a TypeScript entry for Node (dependencies stay imports, resolved from node_modules). */
export async function bundleForNode(entry: string, name: string): Promise<string> {
  const outfile = `${ARTIFACTS}/${name}.mjs`;
  await build({ entryPoints: [entry], bundle: true, format: "esm", platform: "node", packages: "external", outfile, logLevel: "silent" });
  return outfile;
}

/** Deno, from the `deno` package, running TypeScript sources as they are (npm imports come from node_modules). */
export function denoRun(entry: string): string[] {
  return [
    `${import.meta.dir}/../../node_modules/.bin/deno`,
    "run",
    "--no-lock",
    "--allow-net=127.0.0.1",
    "--allow-read",
    "--allow-env",
    entry,
  ];
}

/** Spawns a server that prints "READY <port>" once it listens. */
export async function spawnReady(cmd: string[]) {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "inherit" });
  const text = await readUntil(proc.stdout as ReadableStream<Uint8Array>, /READY \d+/);
  return { proc, port: Number(/READY (\d+)/.exec(text)?.[1]) };
}

export interface FixtureServer {
  name: string;
  url: string;
  stop(): void;
}

export async function startFixtureServers(): Promise<FixtureServer[]> {
  const nodeEntry = await bundleForNode(`${import.meta.dir}/serve-node.ts`, "serve-node");
  const started = await Promise.all([
    spawnReady([process.execPath, `${import.meta.dir}/serve-bun.ts`]).then((s) => ({ name: "bun", ...s })),
    spawnReady(["node", nodeEntry]).then((s) => ({ name: "node", ...s })),
    spawnReady(denoRun(`${import.meta.dir}/serve-deno.ts`)).then((s) => ({ name: "deno", ...s })),
  ]);
  // The Node fixture serves Chatter on a path, to exercise attach's `path` option.
  const path = (name: string) => (name === "node" ? "/chatter" : "/");
  return started.map(({ name, proc, port }) => ({ name, url: `ws://127.0.0.1:${port}${path(name)}`, stop: () => proc.kill() }));
}
