/**
 * The wire format: every frame is one binary WebSocket message holding a
 * codec-encoded array whose first element is the frame type. PROTOCOL.md has
 * a heading per frame; the cases below mirror it.
 */
import { ChatterError, type WireError } from "../errors.ts";
import { decodeAll, encode, encodeKept, TooManyValues, WireFormatError } from "./codec.ts";
import * as FrameType from "./frame-type.ts";

/** The protocol version sent in HELLO; bump it on any incompatible change. */
export const PROTOCOL_VERSION = 1;

/**
 * The most frames one message may hold, by default, on the server: past it
 * the message is refused before any frame is decoded, so a 1 MiB message of
 * tiny frames cannot hold the event loop. The client puts 256 at most in a
 * message (src/wire/batch.ts; the client sends in client/transport.ts, the server in server/session.ts).
 */
export const MAX_FRAMES_PER_MESSAGE = 1000;

/**
 * The frame types, by name (`FrameType.Call`). The engine and the client import frame-type.ts themselves: a
 * namespace passed on from here would be a real object in a browser's bundle, with every name in it.
 */
export { FrameType };

export type HelloFrame = [
  type: 1,
  version: number,
  clientId: string,
  sessionId: string,
  token: string | null,
  lastEvent: number,
  settledBelow: number,
  /** The key the server signed `clientId` with (from an earlier WELCOME), or null: it proves the id. */
  clientKey?: string | null,
];
export type WelcomeFrame = [
  type: 2,
  sessionId: string,
  token: string,
  resumed: boolean,
  settledBelow: number,
  maxMessageBytes: number,
  /** The client's id as the server knows it, and the key that proves it next time. */
  clientId?: string,
  clientKey?: string,
  /**
   * Set on a resume by another instance after the session's instance died: the session (data, topics,
   * broadcasts) carries on, but calls in flight either way died with it. The client fails its calls that
   * went out with `DISCONNECTED` and forgets its answers to the server's calls, whose numbers start again.
   */
  callsLost?: boolean,
];
/** A call; with `credit`, a stream: the producer may send items `0 .. credit - 1` before it hears more (see CREDIT). */
export type CallFrame = [type: 3, id: number, name: string, input: unknown, timeout: number, settledBelow: number, credit?: number];
export type ResultFrame = [type: 4, id: number, value: unknown];
export type ErrorFrame = [type: 5, id: number, error: WireError];
export type EventFrame = [type: 6, seq: number, name: string, input: unknown];
export type CancelFrame = [type: 7, id: number];
export type PingFrame = [type: 8, settledBelow: number];
export type PongFrame = [type: 9, settledBelow: number];
/** Why the server refused the connection; `retryAfter` in ms, for RATE_LIMITED and UNAVAILABLE. */
export interface Refusal {
  code: string;
  message: string;
  retryAfter?: number;
}
export type RefusedFrame = [type: 10, refusal: Refusal];
/** One item of stream `id`, numbered from 0. */
export type ItemFrame = [type: 11, id: number, index: number, item: unknown];
/** The consumer of stream `id` has every item below `received`, and takes items below `limit`. */
export type CreditFrame = [type: 12, id: number, received: number, limit: number];

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | CallFrame
  | ResultFrame
  | ErrorFrame
  | EventFrame
  | CancelFrame
  | PingFrame
  | PongFrame
  | RefusedFrame
  | ItemFrame
  | CreditFrame;

/** Close codes Chatter uses, in the range RFC 6455 leaves to applications. */
export const CloseCode = {
  /** Standard: the server is going away (shutdown). */
  GoingAway: 1001,
  /** Standard: a frame broke the protocol. */
  ProtocolError: 1002,
  /** Standard: a message was larger than `maxMessageBytes`, or held more than `maxFramesPerMessage` frames. */
  TooBig: 1009,
  /** Standard: the server met an error of its own while handling a message. */
  InternalError: 1011,
  /** Standard: the server is full (`maxConnections`); try again later. */
  TryAgainLater: 1013,
  /** The client speaks another protocol version; reconnecting will not help. */
  VersionMismatch: 4000,
  /** The client sent no HELLO in time. */
  HandshakeTimeout: 4001,
  /** The client stopped answering pings. */
  PingTimeout: 4002,
  /** The peer's outgoing buffer passed its limit (a slow consumer). */
  SlowConsumer: 4003,
  /** The client closed on purpose; its session ends. */
  ClientClosed: 4004,
  /** The session resumed on a newer socket; this one is stale. */
  Replaced: 4005,
  /** Given to `onClose` on the instance a session left, in a cluster: it moved to another instance and goes on there. */
  Moved: 4006,
  /** The session could not resume: broadcasts it missed were no longer kept. */
  Unresumable: 4007,
  /** The client sent more than `maxFramesPerSecond` frames in a second. */
  TooManyFrames: 4008,
  /** Refused at admission: `getConnectionData` threw (or threw a `ChatterError` of the app's own code). */
  Unauthorized: 4401,
  /** Refused at admission: an origin not allowed, or a 403 `Response`. */
  Forbidden: 4403,
  /** Refused at admission: over the rate limit; the REFUSED frame says when to come back. */
  RateLimited: 4429,
} as const;

/** @returns the bytes of one frame: a view into the encoder's shared buffer, to send at once */
export function encodeFrame(frame: Frame): Uint8Array {
  return encode(frame);
}

/** @returns the bytes of one frame that will be kept (an answer, for repeats), in a buffer of their own */
export function encodeKeptFrame(frame: Frame): Uint8Array {
  return encodeKept(frame);
}

function bad(what: string): never {
  throw new ChatterError("PROTOCOL", `malformed frame: ${what}`);
}

/** Names a value from the peer without converting it (a map may decode to an object whose toString is not a function). */
function describe(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return "(an array)";
  return typeof v === "object" ? "(an object)" : `(a ${typeof v})`;
}

const isId = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

/**
 * Decodes and shape-checks the frames of one message: one frame, or several
 * back to back (a sender may batch the frames it makes in one tick).
 * @param maxFrames - the most frames the message may hold ({@link MAX_FRAMES_PER_MESSAGE} on the server); past it nothing is decoded
 * @returns the frames, as the arrays that came off the wire
 * @throws ChatterError `LIMIT` for more than `maxFrames` frames, `PROTOCOL` for anything else that is not well-formed; the caller closes the socket
 */
export function decodeFrames(bytes: Uint8Array, maxFrames = Infinity): Frame[] {
  let values: unknown[];
  try {
    values = decodeAll(bytes, maxFrames);
  } catch (err) {
    if (err instanceof TooManyValues) throw new ChatterError("LIMIT", `message holds more than ${maxFrames} frames (maxFramesPerMessage)`);
    // msgpackr's own messages quote the bytes and its internals: the peer gets a fixed phrase instead.
    bad(err instanceof WireFormatError ? err.message : "undecodable payload");
  }
  try {
    // Checked in place: the array of values becomes the array of frames, with no copy made per message.
    for (let i = 0; i < values.length; i++) checkFrame(values[i]);
    return values as Frame[];
  } catch (err) {
    if (err instanceof ChatterError) throw err;
    return bad("frame fields could not be checked"); // A check that threw: still the peer's fault, never ours.
  }
}

/**
 * Joins frames into one message, back to back.
 * @param size - their total length in bytes
 * @returns the message (the frame itself when there is one)
 */
export function joinFrames(frames: Uint8Array[], size: number): Uint8Array {
  if (frames.length === 1) return frames[0] as Uint8Array;
  const message = new Uint8Array(size);
  let at = 0;
  for (const f of frames) {
    message.set(f, at);
    at += f.byteLength;
  }
  return message;
}

/** Shape-checks one decoded frame; the cases mirror PROTOCOL.md's headings. */
function checkFrame(f: unknown): Frame {
  if (!Array.isArray(f) || f.length === 0) bad("not a frame array");
  switch (f[0]) {
    case FrameType.Hello: // [1, version, clientId, sessionId, token | null, lastEvent, settledBelow, clientKey?]
      if (typeof f[1] !== "number" || typeof f[2] !== "string" || typeof f[3] !== "string") bad("HELLO fields");
      if (f[4] !== null && typeof f[4] !== "string") bad("HELLO token");
      if (!isId(f[5]) || !isId(f[6])) bad("HELLO counters");
      if (f[7] !== undefined && f[7] !== null && typeof f[7] !== "string") bad("HELLO client key");
      return f as HelloFrame;
    case FrameType.Welcome: // [2, sessionId, token, resumed, settledBelow, maxMessageBytes, clientId?, clientKey?]
      if (typeof f[1] !== "string" || typeof f[2] !== "string" || typeof f[3] !== "boolean" || !isId(f[4]) || !isId(f[5])) {
        bad("WELCOME fields");
      }
      if ((f[6] !== undefined && typeof f[6] !== "string") || (f[7] !== undefined && typeof f[7] !== "string")) bad("WELCOME client id");
      return f as WelcomeFrame;
    case FrameType.Call: // [3, id, name, input, timeout, settledBelow, credit?]
      if (!isId(f[1]) || typeof f[2] !== "string" || typeof f[4] !== "number" || !isId(f[5])) bad("CALL fields");
      if (f[6] !== undefined && !(isId(f[6]) && f[6] > 0)) bad("CALL credit");
      return f as CallFrame;
    case FrameType.Result: // [4, id, value]
      if (!isId(f[1]) || f.length !== 3) bad("RESULT fields");
      return f as ResultFrame;
    case FrameType.Error: // [5, id, { code, message, issues? }]
      if (!isId(f[1]) || typeof f[2] !== "object" || f[2] === null) bad("ERROR fields");
      return f as ErrorFrame;
    case FrameType.Event: // [6, seq, name, input]
      if (!isId(f[1]) || typeof f[2] !== "string" || f.length !== 4) bad("EVENT fields");
      return f as EventFrame;
    case FrameType.Cancel: // [7, id]
      if (!isId(f[1])) bad("CANCEL id");
      return f as CancelFrame;
    case FrameType.Ping: // [8, settledBelow]
    case FrameType.Pong: // [9, settledBelow]
      if (!isId(f[1])) bad("PING/PONG fields");
      return f as PingFrame | PongFrame;
    case FrameType.Refused: // [10, { code, message, retryAfter? }]
      if (typeof f[1] !== "object" || f[1] === null || typeof f[1].code !== "string" || typeof f[1].message !== "string") {
        bad("REFUSED fields");
      }
      return f as RefusedFrame;
    case FrameType.Item: // [11, id, index, item]
      if (!isId(f[1]) || !isId(f[2]) || f.length !== 4) bad("ITEM fields");
      return f as ItemFrame;
    case FrameType.Credit: // [12, id, received, limit]
      if (!isId(f[1]) || !isId(f[2]) || !isId(f[3]) || f[3] < f[2]) bad("CREDIT fields");
      return f as CreditFrame;
    default:
      return bad(`unknown frame type ${describe(f[0])}`);
  }
}
