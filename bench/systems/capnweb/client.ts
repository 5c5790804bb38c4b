/**
 * Benchmark client for Cap'n Web (capnweb), run under Bun: one WebSocket RPC
 * session whose main stub is the server's echo object. Every call is its own
 * RPC, so many can be in flight; awaiting one pulls its result and releases it.
 */
import { newWebSocketRpcSession, type RpcTarget } from "capnweb";

type Payload = { id: number; name: string; value: number };
interface EchoApi extends RpcTarget {
  echo(payload: Payload): Payload;
}

export async function connect(port: number): Promise<{ call(payload: Payload): Promise<unknown>; close(): void }> {
  // Open the socket first so that `connect` resolves only once it is usable; capnweb accepts an open WebSocket.
  const ws = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("error", () => reject(new Error(`capnweb: cannot connect to 127.0.0.1:${port}`)), { once: true });
  });
  const api = newWebSocketRpcSession<EchoApi>(ws);
  return {
    // An RpcPromise is a thenable proxy; awaiting it here hands the caller a plain Promise.
    call: async (payload) => await api.echo(payload),
    close: () => {
      // Disposing the main stub ends the session and closes the socket.
      api[Symbol.dispose]();
    },
  };
}
