/**
 * Benchmark client for Socket.IO 4 (socket.io-client, run under Bun): each
 * call is one `echo` event sent with emitWithAck, resolved by the server's
 * acknowledgement. Acks carry their own ids, so many calls can be in flight.
 */
import { io, type Socket } from "socket.io-client";

type Payload = { id: number; name: string; value: number };
type ServerToClient = Record<string, never>;
type ClientToServer = { echo: (payload: Payload, ack: (reply: Payload) => void) => void };

export async function connect(port: number): Promise<{ call(payload: Payload): Promise<unknown>; close(): void }> {
  const socket: Socket<ServerToClient, ClientToServer> = io(`ws://127.0.0.1:${port}`, {
    // WebSocket from the first packet: no long-polling handshake, no upgrade.
    transports: ["websocket"],
    // A benchmark connection that drops should fail loudly, not silently reconnect.
    reconnection: false,
    forceNew: true,
    // The default ({ threshold: 1024 }) offers deflate and measures every frame; the server declines it
    // anyway, so switch it off here too.
    perMessageDeflate: undefined,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", (err) => reject(err));
  });
  return {
    // No ack timeout is set, so no timer is armed per call.
    call: (payload) => socket.emitWithAck("echo", payload),
    close: () => void socket.disconnect(),
  };
}
