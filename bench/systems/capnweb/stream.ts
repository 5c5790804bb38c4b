/**
 * Cap'n Web's client for the stream row, run under Bun: `tokens(n)` returns a
 * ReadableStream stub, which capnweb pumps across with its own flow control;
 * the items are read until it closes.
 */
import { newWebSocketRpcSession, type RpcTarget } from "capnweb";

interface StreamApi extends RpcTarget {
  tokens(n: number): ReadableStream<{ i: number; text: string }>;
}

export async function connect(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("error", () => reject(new Error(`capnweb: cannot connect to 127.0.0.1:${port}`)), { once: true });
  });
  const api = newWebSocketRpcSession<StreamApi>(ws);
  return {
    /** @returns the number of items read, once the stream has closed */
    async stream(n: number): Promise<number> {
      // A reader loop rather than for await: tsc's DOM typings give ReadableStream no async iterator.
      const reader = (await api.tokens(n)).getReader();
      let count = 0;
      for (let next = await reader.read(); !next.done; next = await reader.read()) {
        if (next.value.i !== count++) throw new Error(`capnweb stream: item ${next.value.i} arrived at ${count - 1}`);
      }
      return count;
    },
    close: () => api[Symbol.dispose](),
  };
}
