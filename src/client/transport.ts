/**
 * The client's transport: the first frame of a tick goes out at once, and any more frames made in the same
 * tick follow together as one WebSocket message at its end (PROTOCOL.md, "Framing"). A lone call is not
 * delayed, and a burst of calls costs two sends, not one each. The batch itself is the shared FrameBatch;
 * only the timing is the client's.
 */
import type { Transport } from "../engine/types.ts";
import { FrameBatch } from "../wire/batch.ts";
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
 * @returns a transport that sends the first frame of a tick and batches the rest, {@link MAX_BATCH_FRAMES} to a
 *   message at most
 */
export function batchingTransport(ws: WebSocket, maxMessageBytes: number): Transport {
  // A value takes a byte at least, so a batch of at most MAX_VALUES bytes never holds more values than a message may.
  const batch = new FrameBatch(Math.min(maxMessageBytes, MAX_VALUES), MAX_BATCH_FRAMES);
  /** Whether this tick has sent its first frame: the rest wait in `batch` for its end. */
  let ticking = false;
  // A socket closed meanwhile takes the frames with it; the engine resends what matters after a resume.
  const write = (data: Uint8Array | null) => data && ws.readyState === 1 && ws.send(data);
  const flush = () => {
    ticking = false;
    write(batch.take());
  };
  return {
    send(frame) {
      if (ticking) return void write(batch.add(frame));
      ticking = true;
      queueMicrotask(flush);
      write(frame);
    },
  };
}
