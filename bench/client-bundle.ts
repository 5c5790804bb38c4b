/**
 * The browser client's size: a bundle of what a browser app imports
 * (createClient, createProc, ChatterError), minified by esbuild with code
 * splitting on, then gzipped. Split so, the stream code (src/engine/stream-load.ts)
 * is in chunks of its own that load when an app first opens or answers a stream:
 * what an app loads before its first call is the entry and the chunks it imports,
 * and those lazy chunks are counted apart. Each file is gzipped on its own, as each
 * is its own download. The peers' browser clients are bundled the same way, from
 * what an app imports to make calls. Run: bun bench/client-bundle.ts [--codecs]
 * (--codecs: also the codecs issue #16 weighed, alone and in the client).
 */
import { relative } from "node:path";
import { gzipSync } from "node:zlib";
import { build, type Metafile } from "esbuild";

/** Sizes of some of a bundle's files. */
export interface BundleFiles {
  minified: number;
  /** Each file gzipped on its own, summed. */
  gzip: number;
  /** The files gzipped as one: what a bundler that puts the entry's shared chunks in the entry itself would send. */
  gzipAsOne: number;
  /** Source files with bytes in these files, and how many. */
  inputs: Record<string, number>;
  /** Each file, with its minified and gzipped bytes. */
  files: { file: string; minified: number; gzip: number }[];
}

/** What an app loads before its first call (the figures at the top level), and what it loads later, on demand. */
export interface BundleReport extends BundleFiles {
  /** The chunks only an `import()` reaches: the stream code. */
  lazy: BundleFiles;
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
 * @returns the sizes of a minified browser bundle of `contents`, an ES module: its entry and the chunks that
 *   entry imports, and apart, the chunks only reached by `import()`
 */
async function measureBundle(contents: string, codec?: string): Promise<BundleReport> {
  const root = `${import.meta.dir}/..`;
  const swap = { filter: /src\/wire\/codec\.ts$/ };
  const result = await build({
    plugins: codec
      ? [{ name: "codec", setup: (b) => void b.onLoad(swap, () => ({ contents: codec, loader: "js", resolveDir: root })) }]
      : [],
    stdin: { contents, resolveDir: root, loader: "ts" },
    absWorkingDir: root,
    outdir: `${root}/bundle-out`, // Never written: `write: false`.
    bundle: true,
    splitting: true,
    minify: true,
    format: "esm",
    platform: "browser",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const code = new Map(result.outputFiles.map((f) => [relative(root, f.path), f.contents]));
  const outputs = result.metafile.outputs;
  const entry = Object.keys(outputs).find((file) => outputs[file]?.entryPoint === "<stdin>") ?? "";
  // The entry and what it imports statically; the rest is reached only by import().
  const first = new Set([entry]);
  for (const file of first) for (const i of outputs[file]?.imports ?? []) if (i.kind === "import-statement") first.add(i.path);
  const lazy = Object.keys(outputs).filter((file) => !first.has(file));
  return { ...sizes([...first], outputs, code), lazy: sizes(lazy, outputs, code) };
}

/** @returns the sizes of `files`, some of a bundle's outputs */
function sizes(files: string[], outputs: Metafile["outputs"], code: Map<string, Uint8Array>): BundleFiles {
  const out: BundleFiles = { minified: 0, gzip: 0, gzipAsOne: 0, inputs: {}, files: [] };
  const all: Uint8Array[] = [];
  for (const file of files) {
    const bytes = code.get(file) ?? new Uint8Array();
    all.push(bytes);
    const gzip = gzipSync(bytes, { level: 9 }).byteLength;
    out.files.push({ file: file.replace(/^bundle-out\//, ""), minified: bytes.byteLength, gzip });
    out.minified += bytes.byteLength;
    out.gzip += gzip;
    for (const [input, { bytesInOutput }] of Object.entries(outputs[file]?.inputs ?? {})) {
      if (bytesInOutput > 0) out.inputs[input] = (out.inputs[input] ?? 0) + bytesInOutput;
    }
  }
  out.gzipAsOne = gzipSync(Buffer.concat(all), { level: 9 }).byteLength;
  return out;
}

/** Prints what a bundle's files hold, largest first. */
function printFiles(r: BundleFiles): void {
  for (const f of r.files) console.log(`  ${f.file}: ${f.minified} B minified, ${f.gzip} B gzipped`);
  for (const [file, bytes] of Object.entries(r.inputs).sort((a, b) => b[1] - a[1]))
    console.log(`    ${String(bytes).padStart(6)}  ${file}`);
}

if (import.meta.main) {
  const r = await measureClientBundle();
  const { lazy } = r;
  console.log(
    `client bundle, before the first call: ${r.minified} B minified, ${r.gzip} B gzipped (${r.files.length} files; ${r.gzipAsOne} B as one)`,
  );
  printFiles(r);
  console.log(`loaded with the first stream (import()): ${lazy.minified} B minified, ${lazy.gzip} B gzipped (${lazy.files.length} files)`);
  printFiles(lazy);
  console.log(`in all: ${r.minified + lazy.minified} B minified, ${r.gzip + lazy.gzip} B gzipped`);
  for (const [name, gzip] of Object.entries(await measurePeerBundles())) console.log(`${name}: ${gzip} B gzipped`);
  if (process.argv.includes("--codecs")) {
    console.log("\n| codec | codec alone, min+gz | client bundle with it, min+gz |\n|---|--:|--:|");
    for (const [name, r] of Object.entries(await measureCodecOptions())) console.log(`| ${name} | ${r.codec} B | ${r.client} B |`);
  }
  const figures = {
    client_bundle_min_bytes: r.minified,
    client_bundle_gzip_bytes: r.gzip,
    client_bundle_lazy_min_bytes: lazy.minified,
    client_bundle_lazy_gzip_bytes: lazy.gzip,
  };
  console.log(JSON.stringify(figures));
}
