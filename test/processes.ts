/**
 * Child processes the tests (and the benchmarks in bench/) run against: waiting for a fixture's ready line, a
 * free port, a redis-server.
 */

/** Reads a process's output until `pattern` matches; @returns the text read so far */
export async function readUntil(stream: ReadableStream<Uint8Array>, pattern: RegExp): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!pattern.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`process output ended before ${pattern}: ${text}`);
    text += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  return text;
}

/** @returns a TCP port that was free a moment ago on 127.0.0.1 */
export function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/** Starts redis-server on 127.0.0.1:port, saving nothing to disk unless given a data dir; resolves once it accepts connections. */
export async function startRedis(port: number, options: { dataDir?: string } = {}) {
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", ""];
  // With a data dir: an append-only file there, so a restart (SIGTERM, then start again) keeps every write.
  if (options.dataDir) args.push("--appendonly", "yes", "--appendfsync", "always", "--dir", options.dataDir);
  else args.push("--appendonly", "no");
  const proc = Bun.spawn(["redis-server", ...args], { stdout: "pipe" });
  await readUntil(proc.stdout as ReadableStream<Uint8Array>, /Ready to accept connections/);
  return proc;
}
