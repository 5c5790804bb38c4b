/**
 * Socket.IO 4 in the chaos scenario, for comparison: instances run
 * socketio-instance.ts (Socket.IO server, @socket.io/redis-streams-adapter on
 * ioredis, connectionStateRecovery); clients are socket.io-client. Calls both
 * ways are events with acknowledgements (`timeout(ms).emitWithAck`); a reset
 * is a reconnect whose `socket.recovered` is false.
 */
import { io } from "socket.io-client";
import type { BroadcastEvent, System } from "./scenario.ts";

export const TOPIC = "chaos";

/** Socket.IO's errors are plain `Error`s: name them by message. */
function codeOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes("timed out")) return "TIMEOUT";
  if (message.includes("disconnected")) return "DISCONNECTED";
  return `ERROR ${message}`;
}

export const socketioSystem: System = {
  name: "socketio",
  // Bun runs the Socket.IO server and the adapter as they are; see socketio-instance.ts.
  instanceCommand: async () => [process.execPath, `${import.meta.dir}/socketio-instance.ts`],
  async connect(url, hooks) {
    const socket = io(url, {
      transports: ["websocket"],
      forceNew: true,
      reconnectionDelay: 20,
      reconnectionDelayMax: 200,
      timeout: 2000,
    });
    socket.on("event", (event: BroadcastEvent) => hooks.onEvent(event));
    socket.on("ask", (key: string, ack: (answer: string) => void) => void hooks.onServerCall(key).then(ack));
    let connectedBefore = false;
    const first = new Promise<void>((resolve, reject) => {
      socket.on("connect", () => {
        if (connectedBefore && !socket.recovered) hooks.onReset();
        connectedBefore = true;
        // A recovered socket keeps its rooms; a fresh one joins again.
        if (!socket.recovered)
          socket
            .timeout(2000)
            .emitWithAck("subscribe")
            .then(() => resolve(), reject);
      });
    });
    await first;
    return {
      call: (key, slowMs, timeout) => socket.timeout(timeout).emitWithAck("work", { key, slowMs }),
      close: () => void socket.disconnect(),
    };
  },
  codeOf,
};
