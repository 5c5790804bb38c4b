/** Small helpers for starting the processes that benchmarks run against (the tests keep their own, in test/processes.ts). */

/** Reads a process's stdout until `pattern` matches; @returns the text read so far */
export async function readUntil(stream: ReadableStream<Uint8Array>, pattern: RegExp): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  while (!pattern.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`process output ended before ${pattern}: ${text}`);
    text += new TextDecoder().decode(value);
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

/** Starts Debian's redis-server on 127.0.0.1:port with nothing saved to disk; resolves once it accepts connections. */
export async function startRedis(port: number) {
  const proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdout: "pipe",
  });
  await readUntil(proc.stdout as ReadableStream<Uint8Array>, /Ready to accept connections/);
  return proc;
}
