/**
 * What every outgoing call does before it is sent, wherever it goes: to the
 * other end of a socket (calls.ts), or to a client on another instance of a
 * cluster (server/index.ts, `callClient`). Written once so both agree.
 */
import { ChatterError } from "../errors.ts";
import { type Proc, parse } from "../proc.ts";
import { type CallOptions, DEFAULT_TIMEOUT } from "./types.ts";

/** Where a call goes once its input is parsed. */
export interface CallSender {
  start(proc: Proc, value: unknown, timeout: number, signal: AbortSignal | undefined): Promise<unknown>;
}

/** @returns the error of a call whose signal aborted, with the signal's reason */
export function aborted(proc: string, signal: AbortSignal): ChatterError {
  const why = signal.reason instanceof Error ? `: ${signal.reason.message}` : "";
  return new ChatterError("ABORTED", `call to "${proc}" was aborted${why}`);
}

/**
 * The steps every outgoing call takes before it is sent, wherever it goes (a peer, or a client on another
 * instance of a cluster): the timeout settled, an aborted signal refused, the input parsed (synchronously
 * where the schema allows).
 * @param sender - its `start` sends the caller's value (not the parsed one: the receiver parses it, so transforms run once)
 * @returns what `start` returns; rejects with `VALIDATION` or `ABORTED` before sending
 */
export function callSteps(proc: Proc, input: unknown, options: CallOptions | undefined, sender: CallSender): Promise<unknown> {
  const timeout = options?.timeout ?? proc.timeout ?? DEFAULT_TIMEOUT;
  const signal = options?.signal;
  if (signal?.aborted) return Promise.reject(aborted(proc.name, signal));
  let parsed: unknown;
  try {
    parsed = parse(proc.takes, input, proc.name, "input");
  } catch (err) {
    return Promise.reject(err);
  }
  const value = proc.takes === null ? null : input;
  if (parsed instanceof Promise) return parsed.then(() => sender.start(proc, value, timeout, signal));
  return sender.start(proc, value, timeout, signal);
}
