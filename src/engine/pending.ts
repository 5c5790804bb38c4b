/**
 * An outgoing call while it has no answer, and the small pure steps on it
 * that the calling half (calls.ts) takes.
 */
import { ChatterError } from "../errors.ts";
import type { Proc } from "../proc.ts";
import { decode } from "../wire/codec.ts";
import { type CallFrame, encodeFrame } from "../wire/frames.ts";
import type { StreamReader } from "./stream-reader.ts";

/** What a settled call's frame becomes: the deadline clock may hold the call a while, not its encoded input. */
export const SETTLED = new Uint8Array(0);
/** CANCELs kept for resending after a resume, at most, and for how long (a resume window's default). */
export const MAX_CANCELS = 1000;
export const CANCEL_KEEP_MS = 30_000;

export interface Pending {
  id: number;
  proc: Proc;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** Its timeout in ms, 0 for none. */
  wait: number;
  /** When it times out (performance.now() clock); 0 when it waits for ever. */
  deadline: number;
  frame: Uint8Array;
  /** Whether the frame went out on some socket; unsent calls are the offline queue. */
  sent: boolean;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Set for a stream: it takes the items, and the call settles at END once every item is here. */
  reader: StreamReader | undefined;
}

/** Gives a call that never went out a new id (and the watermark of now), re-encoding its CALL frame. */
export function renumbered(p: Pending, id: number, settledBelow: number): void {
  const call = decode(p.frame) as CallFrame;
  call[1] = id;
  call[5] = settledBelow;
  p.id = id;
  if (p.reader) p.reader.id = id;
  p.frame = encodeFrame(call);
}

/** @returns the error of a call past its timeout */
export function timedOut(p: Pending): ChatterError {
  return new ChatterError("TIMEOUT", `call to "${p.proc.name}" timed out after ${p.wait} ms`);
}
