/**
 * Benchmark client for birpc, run under Bun on the global WebSocket: one birpc
 * instance over the socket, JSON text frames. birpc tags each request with an
 * id, so many calls can be in flight.
 */
import { createBirpc } from "birpc";

type Payload = { id: number; name: string; value: number };
type ServerFunctions = { echo(payload: Payload): Payload };

export async function connect(port: number): Promise<{ call(payload: Payload): Promise<unknown>; close(): void }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("error", () => reject(new Error(`birpc: cannot connect to 127.0.0.1:${port}`)), { once: true });
  });
  const rpc = createBirpc<ServerFunctions>(
    {},
    {
      post: (data: string) => ws.send(data),
      on: (fn) => ws.addEventListener("message", (event) => fn(event.data)),
      // birpc's default serialiser is the identity; a WebSocket needs text or bytes.
      serialize: JSON.stringify,
      deserialize: JSON.parse,
      // birpc's default per-call timeout (60 s) is left on: that is how birpc runs out of the box.
    },
  );
  return {
    call: (payload) => rpc.echo(payload),
    close: () => {
      rpc.$close();
      ws.close();
    },
  };
}
