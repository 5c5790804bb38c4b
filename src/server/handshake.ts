/**
 * The handshake (PROTOCOL.md, "HELLO" and "WELCOME"): a socket's first frame
 * either starts a new session or, with the right token, resumes a parked one
 * on this socket, catching it up on the broadcasts it missed.
 */
import { CloseCode, encodeFrame, FrameType, type HelloFrame, PROTOCOL_VERSION, type WelcomeFrame } from "../wire/frames.ts";
import { faceOf, type ServerConnection } from "./connection.ts";
import type { ServerCore } from "./core.ts";
import { sameSecret } from "./identity.ts";
import { Session } from "./session.ts";
import type { SocketState } from "./socket-state.ts";

/** Handles a socket's HELLO: a new session, or a resumed one. */
export function handshake(core: ServerCore, state: SocketState, hello: HelloFrame): void {
  const [, version, claimedId, sessionId, token, lastEvent, settledBelow] = hello;
  clearTimeout(state.helloTimer);
  state.helloTimer = undefined; // Do not keep the spent timer alive with the socket.
  core.handshaking.delete(state);
  if (version !== PROTOCOL_VERSION) {
    return core.closeSocket(state, CloseCode.VersionMismatch, `protocol version ${version} unsupported; server speaks ${PROTOCOL_VERSION}`);
  }
  const old = token === null ? undefined : core.sessions.get(sessionId);
  if (old && sameSecret(old.token, token as string)) {
    // Handing itself over to another instance this very moment: the client comes back in a moment.
    if (old.movedTo) return core.closeSocket(state, CloseCode.TryAgainLater, "the session is moving; try again");
    // It arrived from another instance and has not caught up yet: the cluster's log has what it missed.
    if (old.catchUp && core.cluster) return core.cluster.sessions.resumeFromLog(old, state, hello);
    if (core.topics.log.covers(old, lastEvent)) return resume(core, old, state, lastEvent, settledBelow);
    core.endSession(old, CloseCode.Unresumable, "broadcasts it missed are no longer kept");
  }
  // A new session, always with an id this server made: ids cross instances (cluster exclusions), so a
  // client must not be able to pick one that names somebody else's session.
  const id = core.sessions.newId();
  // The client id is kept only when the client proves it with the key this server signed it with.
  const proven = core.identity.verify(claimedId, hello[7]);
  const clientId = proven ? claimedId : crypto.randomUUID();
  const session = new Session(core, faceOf, clientId, id, null, state.data, state.address);
  core.sessions.set(id, session);
  bind(core, session, state);
  core.cluster?.records.changed(session);
  const key = proven ? (hello[7] as string) : core.identity.sign(clientId);
  const welcome: WelcomeFrame = [FrameType.Welcome, id, session.token, false, session.settledBelow, core.maxMessageBytes, clientId, key];
  core.write(state, encodeFrame(welcome));
  core.log?.(`client ${clientId} connected (session ${id})`);
  core.hook(() => core.options.onOpen?.(session.connection as ServerConnection), session);
}

/** Moves a session to a new socket: catch it up on broadcasts, rejoin its topics, resend unanswered calls. */
function resume(core: ServerCore, session: Session, state: SocketState, lastEvent: number, settledBelow: number): void {
  clearTimeout(session.expiry);
  core.unpark(session);
  const stale = session.state;
  bind(core, session, state);
  if (stale) core.closeSocket(stale, CloseCode.Replaced, "session resumed on a newer socket");
  core.write(state, resumedWelcome(core, session, false));
  const missed = core.topics.log.missed(session, lastEvent);
  for (const frame of missed) session.send(frame);
  // Out before the socket rejoins its topics, so no newer broadcast can overtake them.
  session.flush();
  core.topics.rejoin(session);
  session.madePeer?.attach(session, true, settledBelow);
  core.log?.(`client ${session.clientId} resumed session ${session.sessionId} (${missed.length} broadcast(s) caught up)`);
  if (stale === null) core.hook(() => core.options.onResume?.(session.connection as ServerConnection), session);
}

/**
 * @param callsLost - the session was taken over after its instance died (PROTOCOL.md, WELCOME)
 * @returns the WELCOME of a resumed session
 */
export function resumedWelcome(core: ServerCore, session: Session, callsLost: boolean): Uint8Array {
  const welcome: WelcomeFrame = [FrameType.Welcome, session.sessionId, session.token, true, session.settledBelow, core.maxMessageBytes];
  welcome.push(session.clientId, core.identity.sign(session.clientId));
  if (callsLost) welcome.push(true);
  return encodeFrame(welcome);
}

/** Puts a session on a socket (a relayed one included: it then gets broadcasts one by one). */
export function bind(core: ServerCore, session: Session, state: SocketState): void {
  if (session.state) session.state.session = null;
  session.state = state;
  state.session = session;
  state.bound();
  // A socket relayed from another instance cannot join native pub/sub: broadcasts reach it one by one.
  if (state.remote) core.topics.relayed.add(session);
  else core.topics.relayed.delete(session);
}
