/**
 * The browser client's size: a bundle of what a browser app imports
 * (createClient, createProc, ChatterError), minified by esbuild, then gzipped.
 * Run: bun bench/client-bundle.ts
 */
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

export interface BundleReport {
  minified: number;
  gzip: number;
  /** Source files with bytes in the bundle, and how many. */
  inputs: Record<string, number>;
}

/** @returns the sizes of a minified browser bundle of the client */
export async function measureClientBundle(): Promise<BundleReport> {
  const result = await build({
    stdin: {
      contents: 'export { createClient, createProc, ChatterError, ConnectionState } from "./src/index.ts";',
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
  console.log(JSON.stringify({ client_bundle_min_bytes: r.minified, client_bundle_gzip_bytes: r.gzip }));
}
