/**
 * The stream row's limit on the client side: ask the raw server for n items
 * and decode and count the binary messages as they come, nothing more.
 */
import { unpack } from "msgpackr";

export async function connect(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  return {
    /** @returns the number of items received, once the n-th has arrived */
    stream(n: number): Promise<number> {
      let count = 0;
      return new Promise((resolve) => {
        ws.onmessage = (ev) => {
          const item = unpack(new Uint8Array(ev.data as ArrayBuffer)) as { i: number; text: string };
          if (item.i !== count++) throw new Error(`raw stream: item ${item.i} arrived at ${count - 1}`);
          if (count === n) resolve(count);
        };
        ws.send(JSON.stringify({ stream: n }));
      });
    },
    close: () => ws.close(),
  };
}
