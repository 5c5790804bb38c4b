/**
 * Batching frames into one WebSocket message (PROTOCOL.md, "Framing"): a
 * message is just frames one after another. Both ends batch with this; they
 * differ only in when they send (see client/transport.ts and server/session.ts).
 */
import { joinFrames } from "./frames.ts";

/** Frames waiting to go out together, bounded in bytes and in count. */
export class FrameBatch {
  private readonly frames: Uint8Array[] = [];
  private bytes = 0;

  /**
   * @param maxBytes - a batch never grows past this (a lone frame may be bigger)
   * @param maxFrames - nor past this many frames
   */
  constructor(
    private readonly maxBytes: number,
    private readonly maxFrames: number,
  ) {}

  /** Frames waiting. */
  get size(): number {
    return this.frames.length;
  }

  /**
   * Adds a frame.
   * @returns the message made of the frames before it when this one would overfill the batch (it starts the
   *   next batch), or null
   */
  add(frame: Uint8Array): Uint8Array | null {
    const n = this.frames.length;
    const full = n > 0 && (n >= this.maxFrames || this.bytes + frame.byteLength > this.maxBytes) ? this.take() : null;
    this.frames.push(frame);
    this.bytes += frame.byteLength;
    return full;
  }

  /** @returns the waiting frames joined into one message, or null when none wait; the batch is empty after */
  take(): Uint8Array | null {
    if (this.frames.length === 0) return null;
    const message = joinFrames(this.frames, this.bytes);
    // Emptied in place, not replaced: a lone answer per message is the common case, and this runs for each.
    this.frames.length = 0;
    this.bytes = 0;
    return message;
  }
}
