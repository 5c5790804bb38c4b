/**
 * The raw client: JSON with an id in a binary frame (as Chatter's frames are
 * binary), matched back to a Promise per call: the least an RPC client can do.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export async function connect(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`);
  ws.binaryType = "arraybuffer";
  const pending = new Map<number, (value: unknown) => void>();
  let nextId = 0;
  ws.onmessage = (ev) => {
    const message = JSON.parse(decoder.decode(ev.data as ArrayBuffer)) as { id: number };
    const resolve = pending.get(message.id);
    pending.delete(message.id);
    resolve?.(message);
  };
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  return {
    call(payload: { id: number; name: string; value: number }): Promise<unknown> {
      const id = ++nextId;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        ws.send(encoder.encode(JSON.stringify({ ...payload, id })));
      });
    },
    close: () => ws.close(),
  };
}
