/**
 * The browser client's size: a bundle of what a browser app imports
 * (createClient, createProc, ChatterError), minified by esbuild, then gzipped.
 * The peers' browser clients are bundled the same way, from what an app
 * imports to make calls. Run: bun bench/client-bundle.ts [--codecs]
 * (--codecs: also the codecs issue #16 weighed, alone and in the client).
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

const CLIENT_ENTRY = 'export { createClient, createProc, ChatterError, ConnectionState } from "./src/index.ts";';

/** @returns the sizes of a minified browser bundle of the client */
export function measureClientBundle(): Promise<BundleReport> {
  return measureBundle(CLIENT_ENTRY);
}

/**
 * The codecs issue #16 weighed, each as a stand-in for src/wire/codec.ts: the library's encode and decode behind
 * the guard. The npm ones are as they come, without the extensions that would carry Set, Map, undefined and wide
 * bigints as the wire format does (a few hundred bytes more each).
 */
const CODEC_OPTIONS: Record<string, string | null> = {
  "chatter (pack.ts, unpack.ts)": null,
  "msgpackr (as Chatter 0.1 set it up)": "import { Packr } from 'msgpackr'; const p = new Packr({ useRecords: false, moreTypes: true });",
  "msgpackr/pack + msgpackr/unpack": "import { Packr } from 'msgpackr/pack'; const p = new Packr({ useRecords: false, moreTypes: true });",
  "@msgpack/msgpack": "import { encode as e, decode as d } from '@msgpack/msgpack';",
  "notepack.io": "import n from 'notepack.io'; const e = n.encode, d = n.decode;",
  "tiny-msgpack": "import t from 'tiny-msgpack'; const e = t.encode, d = t.decode;",
};
/** The library's encode and decode (e and d, or a Packr p), as src/wire/codec.ts exports them. */
const API = `
export const encode = (v) => (typeof p !== 'undefined' ? p.pack(v) : e(v));
export const decode = (b) => (typeof p !== 'undefined' ? p.unpack(b) : d(b));`;
const GUARDED = `${API}
export { WireFormatError } from './src/wire/guard.ts';
import { countValues } from './src/wire/guard.ts';
export class TooManyValues extends Error {}
export const copyBytes = (f) => new Uint8Array(f);
export const decodeAll = (b, max) => (countValues(b, max), [decode(b)]);`;

/**
 * @returns per codec, the gzipped bytes of the codec alone (its encode and decode, without the guard) and of the
 *   client bundle with it (behind the guard)
 */
export async function measureCodecOptions(): Promise<Record<string, { codec: number; client: number }>> {
  const out: Record<string, { codec: number; client: number }> = {};
  for (const [name, head] of Object.entries(CODEC_OPTIONS)) {
    const alone = head ?? "export { pack } from './src/wire/pack.ts'; export { unpackAll } from './src/wire/unpack.ts';";
    out[name] = {
      codec: (await measureBundle(head === null ? alone : `${head}${API}`)).gzip,
      client: (await measureBundle(CLIENT_ENTRY, head === null ? undefined : `${head}${GUARDED}`)).gzip,
    };
  }
  return out;
}

/** @returns each peer's client bundle, gzipped bytes */
export async function measurePeerBundles(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, entry] of Object.entries(PEER_ENTRIES)) out[name] = (await measureBundle(entry)).gzip;
  return out;
}

/**
 * @param codec - an ES module to bundle in place of src/wire/codec.ts, if any
 * @returns the sizes of a minified browser bundle of `contents`, an ES module
 */
async function measureBundle(contents: string, codec?: string): Promise<BundleReport> {
  const root = `${import.meta.dir}/..`;
  const swap = { filter: /src\/wire\/codec\.ts$/ };
  const result = await build({
    plugins: codec
      ? [{ name: "codec", setup: (b) => void b.onLoad(swap, () => ({ contents: codec, loader: "js", resolveDir: root })) }]
      : [],
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
  if (process.argv.includes("--codecs")) {
    console.log("\n| codec | codec alone, min+gz | client bundle with it, min+gz |\n|---|--:|--:|");
    for (const [name, r] of Object.entries(await measureCodecOptions())) console.log(`| ${name} | ${r.codec} B | ${r.client} B |`);
  }
  console.log(JSON.stringify({ client_bundle_min_bytes: r.minified, client_bundle_gzip_bytes: r.gzip }));
}
