/**
 * Batching: frames made in the same tick go out as one WebSocket message,
 * back to back (PROTOCOL.md, "Framing"). A burst of calls then costs one
 * send, not one each; the tick ends before anything waits.
 */
import type { Link } from "../engine/peer.ts";
import { joinFrames } from "../wire/frames.ts";

/**
 * @param ws - the open socket
 * @param maxBytes - the server's maxMessageBytes; a batch never grows past it
 * @returns a link that queues frames and flushes them at the end of the tick
 */
export function batchingLink(ws: WebSocket, maxBytes: number): Link {
  let queue: Uint8Array[] = [];
  let bytes = 0;
  const flush = () => {
    if (queue.length === 0) return;
    const frames = queue;
    queue = [];
    const size = bytes;
    bytes = 0;
    // A socket closed meanwhile takes the batch with it; the engine resends what matters after a resume.
    if (ws.readyState !== 1) return;
    ws.send(joinFrames(frames, size));
  };
  return {
    send(frame) {
      if (bytes + frame.byteLength > maxBytes) flush();
      if (queue.length === 0) queueMicrotask(flush);
      queue.push(frame);
      bytes += frame.byteLength;
    },
  };
}
