/**
 * Streams on the calling half: how a reader (stream-reader.ts) opens its
 * stream as a call of the engine (calls.ts), sends its CREDITs, and gives up.
 * A stream is a pending call whose answer is its END, so it is resent after a
 * resume and settled by a lost session like any call.
 */
import type { ChatterError } from "../errors.ts";
import type { Proc } from "../proc.ts";
import { callSteps } from "./call-steps.ts";
import type { Calls } from "./calls.ts";
import { type ReaderHost, StreamReader } from "./stream-reader.ts";
import type { PeerHost, StreamOptions } from "./types.ts";

export class StreamCalls implements ReaderHost {
  constructor(
    private readonly calls: Calls,
    private readonly host: PeerHost,
  ) {}

  /** @returns a stream's reader; its CALL goes out when the loop first asks for an item */
  stream(proc: Proc, input: unknown, options: StreamOptions | undefined, window: number): StreamReader {
    return new StreamReader(this, proc, input, options, window);
  }

  open(reader: StreamReader, proc: Proc, input: unknown, options: StreamOptions | undefined, window: number): Promise<unknown> {
    if (this.calls.closed) return Promise.reject(this.calls.closed);
    return callSteps(proc, input, options, {
      start: (_, value, timeout, signal) => this.calls.start(proc, value, timeout, signal, reader, window),
    });
  }

  send(frame: Uint8Array): void {
    this.host.transport?.send(frame);
  }

  cancel(reader: StreamReader, err: ChatterError): void {
    const p = this.calls.pendingOf(reader.id);
    if (p?.reader === reader) this.calls.giveUp(p, err);
  }

  /** An ITEM of one of our streams; the stream settles once its END came and every item with it. */
  onItem(id: number, index: number, item: unknown): void {
    const p = this.calls.pendingOf(id);
    if (!p?.reader) return; // A stream we gave up on.
    p.reader.onItem(index, item);
    this.calls.endStream(p, p.reader);
  }
}
