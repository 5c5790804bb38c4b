/**
 * tRPC 11's client for the stream row, run under Bun: createWSClient and
 * wsLink, the subscription read through onData until the server's generator
 * ends (onComplete).
 */
import { createTRPCClient, createWSClient, wsLink } from "@trpc/client";
import type { Router } from "./server.ts";

export async function connect(port: number) {
  const ws = createWSClient({ url: `ws://127.0.0.1:${port}` });
  const trpc = createTRPCClient<Router>({ links: [wsLink({ client: ws })] });
  return {
    /** @returns the number of items received, once the server's generator has ended */
    stream(n: number): Promise<number> {
      let count = 0;
      return new Promise((resolve, reject) => {
        trpc.tokens.subscribe(
          { n },
          {
            onData: (item) => {
              if (item.i !== count++) reject(new Error(`tRPC stream: item ${item.i} arrived at ${count - 1}`));
            },
            onComplete: () => resolve(count),
            onError: reject,
          },
        );
      });
    },
    close: () => ws.close(),
  };
}
