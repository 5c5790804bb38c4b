/** The Chatter client, as an app would use it. */
import { createClient } from "../../../src/index.ts";
import { ECHO } from "../../procs.ts";

export async function connect(port: number) {
  const client = createClient({ url: `ws://127.0.0.1:${port}`, reconnect: false });
  await new Promise<void>((resolve) => {
    if (client.isConnected) resolve();
    client.onStateChange(() => client.isConnected && resolve());
  });
  return {
    call: (payload: { id: number; name: string; value: number }) => client.call(ECHO, payload),
    close: () => client.close(),
    client,
  };
}
