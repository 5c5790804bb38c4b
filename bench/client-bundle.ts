/**
 * The browser client's size: a bundle of what a browser app imports
 * (createClient, createProc, ChatterError), minified by esbuild, then gzipped.
 * The peers' browser clients are bundled the same way, from what an app
 * imports to make calls. Run: bun bench/client-bundle.ts
 */
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

export interface BundleReport {
  minified: number;
  gzip: number;
  /** Source files with bytes in the bundle, and how many. */
  inputs: Record<string, number>;
}

/** What an app imports from each peer to call a server from a browser. */
export const PEER_ENTRIES = {
  "socket.io-client": 'export { io } from "socket.io-client";',
  // birpc brings no transport and no codec: the app adds a WebSocket and JSON itself.
  birpc: 'export { createBirpc } from "birpc";',
  capnweb: 'export { newWebSocketRpcSession } from "capnweb";',
};

/** @returns the sizes of a minified browser bundle of the client */
export function measureClientBundle(): Promise<BundleReport> {
  return measureBundle('export { createClient, createProc, ChatterError, ConnectionState } from "./src/index.ts";');
}

/** @returns each peer's client bundle, gzipped bytes */
export async function measurePeerBundles(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, entry] of Object.entries(PEER_ENTRIES)) out[name] = (await measureBundle(entry)).gzip;
  return out;
}

/** @returns the sizes of a minified browser bundle of `contents`, an ES module */
async function measureBundle(contents: string): Promise<BundleReport> {
  const result = await build({
    stdin: {
      contents,
      resolveDir: `${import.meta.dir}/..`,
      loader: "ts",
    },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const code = result.outputFiles[0]?.contents ?? new Uint8Array();
  const output = Object.values(result.metafile.outputs)[0];
  const inputs: Record<string, number> = {};
  for (const [file, { bytesInOutput }] of Object.entries(output?.inputs ?? {})) if (bytesInOutput > 0) inputs[file] = bytesInOutput;
  return { minified: code.byteLength, gzip: gzipSync(code, { level: 9 }).byteLength, inputs };
}

if (import.meta.main) {
  const r = await measureClientBundle();
  console.log(`client bundle: ${r.minified} B minified, ${r.gzip} B gzipped`);
  for (const [file, bytes] of Object.entries(r.inputs).sort((a, b) => b[1] - a[1])) console.log(`  ${String(bytes).padStart(6)}  ${file}`);
  for (const [name, gzip] of Object.entries(await measurePeerBundles())) console.log(`${name}: ${gzip} B gzipped`);
  console.log(JSON.stringify({ client_bundle_min_bytes: r.minified, client_bundle_gzip_bytes: r.gzip }));
}
