/**
 * What comes in from a socket before it reaches a session: admission of the
 * upgrade (a refusal is sent over the socket, refusal.ts), the socket's
 * opening, and each message, checked against the size, frame and rate limits
 * before its frames are handled.
 */
import { ChatterError, describeThrown } from "../errors.ts";
import { CloseCode, decodeFrames, encodeFrame, type Frame, FrameType } from "../wire/frames.ts";
import type { ServerConnection } from "./connection.ts";
import type { ServerCore } from "./core.ts";
import { handshake } from "./handshake.ts";
import { closeCodeOf, MAX_REFUSING, refusalOf, refusalResponse } from "./refusal.ts";
import type { Session } from "./session.ts";
import { SocketState } from "./socket-state.ts";
import { admit } from "./upgrade.ts";

/** Room for the first message of a socket (its HELLO, maybe with a few calls batched after it), whatever `maxMessageBytes` is. */
export const HELLO_BYTES = 4096;

/**
 * Decides, during the upgrade, whether a client may connect. A refusal is a socket too: it is accepted
 * only to tell the client why (see `open`), since a browser cannot read an upgrade's HTTP status.
 */
export function admitSocket(
  core: ServerCore,
  request: Request,
  ip: string | null,
): SocketState | Response | Promise<SocketState | Response> {
  if (core.closing) return refused(core, new Response("the server is shutting down", { status: 503, headers: { "Retry-After": "5" } }));
  try {
    const out = admit(request, ip, { ...core.options, limiter: core.limiter, capacity: (address) => core.occupancy.refusal(address) });
    if (out instanceof Promise)
      return out.then(
        (s) => (s instanceof SocketState ? s : refused(core, s)),
        (err) => failed(core, err),
      );
    return out instanceof SocketState ? out : refused(core, out);
  } catch (err) {
    return failed(core, err);
  }
}

/** Admission itself broke (a bug, not a refusal): a 500, reported. */
function failed(core: ServerCore, err: unknown): Response {
  core.report(err);
  return new Response("Internal Server Error", { status: 500 });
}

/** A socket that only carries a refusal to the client; a plain HTTP refusal when too many are open already. */
async function refused(core: ServerCore, reason: unknown): Promise<SocketState | Response> {
  const refusal = await refusalOf(reason);
  if (core.refusing >= MAX_REFUSING) return refusalResponse(refusal);
  const state = new SocketState("refused", undefined);
  state.refusal = refusal;
  return state;
}

/** An admitted socket opened; it must send HELLO in time. */
export function openSocket(core: ServerCore, state: SocketState, socket: unknown): void {
  state.socket = socket;
  state.window = core.tick;
  if (state.refusal) {
    core.refusing++;
    core.log?.(`refused a connection: ${state.refusal.code} ${state.refusal.message}`);
    core.write(state, encodeFrame([FrameType.Refused, state.refusal]));
    return core.closeSocket(state, closeCodeOf(state.refusal), state.refusal.code);
  }
  // Admission checked for room; several upgrades admitted at once may still overfill it.
  if (!core.occupancy.add(state.address)) {
    return core.closeSocket(state, CloseCode.TryAgainLater, "server is full (maxConnections); try again later");
  }
  state.counted = true;
  state.address = core.occupancy.shared(state.address);
  awaitHello(core, state);
}

/** A socket must now send HELLO, in time. */
export function awaitHello(core: ServerCore, state: SocketState): void {
  state.window = core.tick;
  core.handshaking.add(state);
  state.helloTimer = setTimeout(() => {
    core.log?.(`client ${state.clientId} sent no HELLO in time; closing`);
    core.closeSocket(state, CloseCode.HandshakeTimeout, "no HELLO received in time");
  }, core.options.handshakeTimeout ?? 10_000);
}

export function receive(core: ServerCore, state: SocketState, message: string | Uint8Array): void {
  if (state.closing) return; // Closed by us (a refusal, a limit): what it still sends is not looked at.
  if (typeof message === "string") return core.refuse(state, CloseCode.ProtocolError, "text frames are not part of the protocol");
  // A HELLO (with its resume token and client key) must always fit, however small the limit for calls is.
  if (message.byteLength > (state.session ? core.maxMessageBytes : Math.max(core.maxMessageBytes, HELLO_BYTES))) {
    const why = `message of ${message.byteLength} bytes exceeds maxMessageBytes (${core.maxMessageBytes})`;
    return core.refuse(state, CloseCode.TooBig, why);
  }
  if (state.relay) {
    // The session lives on another instance, which judges the frames; here only the rate, so a flood stops here.
    if (overRate(core, state, 1)) return tooManyFrames(core, state);
    return core.cluster?.relays.up(state, message);
  }
  let frames: Frame[];
  try {
    frames = decodeFrames(message, core.limits.maxFramesPerMessage);
  } catch (err) {
    const limit = err instanceof ChatterError && err.code === "LIMIT";
    return core.refuse(state, limit ? CloseCode.TooBig : CloseCode.ProtocolError, describeThrown(err));
  }
  if (overRate(core, state, frames.length)) return tooManyFrames(core, state);
  try {
    handle(core, state, frames, message);
  } catch (err) {
    // A bug of ours or of a hook, not the client's: report it once and drop the socket, rather than once per message.
    core.report(err, (state.session as Session | null)?.connection as ServerConnection | undefined);
    core.closeSocket(state, CloseCode.InternalError, "internal error");
  }
}

/** Only this socket goes: the session parks and may resume, its calls in flight intact. */
function tooManyFrames(core: ServerCore, state: SocketState): void {
  const max = core.limits.maxFramesPerSecond;
  core.log?.(`client ${state.clientId} sent more than ${max} frames in a second; closing its socket`);
  core.closeSocket(state, CloseCode.TooManyFrames, `more than ${max} frames per second (maxFramesPerSecond)`);
}

function handle(core: ServerCore, state: SocketState, frames: Frame[], message: Uint8Array): void {
  for (const frame of frames) {
    // Looked up per frame: a HELLO at the head of a batch binds the session for the frames after it.
    const session = state.session as Session | null;
    if (session) session.receive(frame);
    else if (frame[0] === FrameType.Hello && state.helloTimer !== undefined) {
      // A session this instance does not have may live on another one: the cluster finds it (async), and the
      // whole message goes wherever the session is.
      if (core.cluster && !state.remote && frame[4] !== null && !core.sessions.has(frame[3]))
        return core.cluster.sessions.route(state, frame, message);
      handshake(core, state, frame);
    } else {
      // No HELLO awaited and no session: the HELLO came and is being routed in the cluster, WELCOME not sent yet.
      const why =
        state.helloTimer === undefined ? "a frame came before WELCOME, while the HELLO was handled" : "the first frame must be HELLO";
      return core.refuse(state, CloseCode.ProtocolError, why);
    }
    if (state.closing) return; // That frame got the socket closed: ignore the rest of the batch.
  }
  // Answers made while handling this message go out now, inside the runtime's corked handler: one write,
  // and no wait for the end of the tick.
  (state.session as Session | null)?.flush();
}

/** Counts a message's frames (at least one) against the socket's budget for this second. */
function overRate(core: ServerCore, state: SocketState, frames: number): boolean {
  return state.countFrames(core.tick, frames || 1) > core.limits.maxFramesPerSecond;
}
