/**
 * A session moving between instances of a cluster (server/cluster-sessions.ts): what its Peer takes along, and
 * how the Peer on the instance it moves to carries on from it. It sits apart from peer.ts, calls.ts and
 * answers.ts, whose fields it reads, so a browser's bundle, where a session never moves, leaves it out.
 */
import type { Peer } from "./peer.ts";
import { ReplyCache } from "./replies.ts";

/** A peer's state as it moves between instances of a cluster. */
export interface PeerHandover {
  /** The id of this end's next call. */
  nextCallId: number;
  /** The highest id of the other end's calls handled. */
  lastCallId: number;
  /** Answers kept for repeats: id and RESULT or ERROR frame. */
  replies: [number, Uint8Array][];
}

/**
 * What a session takes along when it moves to another instance of a cluster: call numbering both ways and
 * the answers kept for repeats.
 * @returns it, or null while anything is in flight (a call either way, a stream, an owed CANCEL)
 */
export function handover(peer: Peer): PeerHandover | null {
  const calls = peer.callsMade;
  if (calls && (calls.size || calls.owedCancels())) return null;
  const answers = peer.answersMade;
  if (answers && (answers.running.size || answers.writers?.size)) return null;
  return {
    nextCallId: calls ? calls.nextId : 1,
    lastCallId: answers ? answers.lastCallId : 0,
    replies: answers?.replies?.entries() ?? [],
  };
}

/** Carries on a session that moved here from another instance (see `handover`), so the other end sees no repeat. */
export function takeOver(peer: Peer, state: PeerHandover): void {
  peer.calls.nextId = state.nextCallId;
  const answers = peer.answers;
  answers.lastCallId = state.lastCallId;
  for (const [id, frame] of state.replies) {
    answers.replies ??= new ReplyCache(peer.opts.replies);
    answers.replies.set(id, frame);
  }
}
