/**
 * Batching: the first frame of a tick goes out at once, and any more frames
 * made in the same tick follow together as one WebSocket message at its end
 * (PROTOCOL.md, "Framing"). A lone call is not delayed, and a burst of calls
 * costs two sends, not one each.
 */
import type { Link } from "../engine/peer.ts";
import { joinFrames } from "../wire/frames.ts";
import { MAX_VALUES } from "../wire/guard.ts";

/**
 * The most frames the client puts in one message: well under the server's
 * `MAX_FRAMES_PER_MESSAGE` (1000), so a burst of tiny frames (CANCELs are
 * 3 bytes) never has its message refused.
 */
export const MAX_BATCH_FRAMES = 256;

/**
 * @param ws - the open socket
 * @param maxMessageBytes - the server's maxMessageBytes; a batch never grows past it (a lone frame may be that big)
 * @returns a link that sends the first frame of a tick and batches the rest, {@link MAX_BATCH_FRAMES} to a message at most
 */
export function batchingLink(ws: WebSocket, maxMessageBytes: number): Link {
  // A value takes a byte at least, so a batch of at most MAX_VALUES bytes never holds more values than a message may.
  const maxBytes = Math.min(maxMessageBytes, MAX_VALUES);
  /** Frames waiting for the end of the tick; null until this tick has sent a frame. */
  let queue: Uint8Array[] | null = null;
  let bytes = 0;
  // A socket closed meanwhile takes the frames with it; the engine resends what matters after a resume.
  const write = (data: Uint8Array) => ws.readyState === 1 && ws.send(data);
  const flush = () => {
    const frames = queue;
    const size = bytes;
    queue = null;
    bytes = 0;
    if (frames?.length) write(joinFrames(frames, size));
  };
  return {
    send(frame) {
      if (queue === null) {
        queue = [];
        queueMicrotask(flush);
        write(frame);
        return;
      }
      if (queue.length === MAX_BATCH_FRAMES || (queue.length > 0 && bytes + frame.byteLength > maxBytes)) {
        write(joinFrames(queue, bytes));
        queue = [];
        bytes = 0;
      }
      queue.push(frame);
      bytes += frame.byteLength;
    },
  };
}
