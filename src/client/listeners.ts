/**
 * The callbacks an app registers on a client (onStateChange, onReset, onSession, onError) and how they are
 * called: each in turn, over a copy of the set so a callback may unregister itself, with a throw or a
 * rejection logged rather than let loose in the connection code that fired it. The client is a type
 * parameter here, and the connection sees only the ClientEvents interface, so nothing below client.ts
 * imports it.
 */
import { ChatterError, describeThrown } from "../errors.ts";
import type { Log, StateInfo, StateListener } from "./options.ts";
import type { ConnectionState } from "./state.ts";

/**
 * Adds `item` to `set`.
 * @returns a function that removes it
 */
export function listen<T>(set: Set<T>, item: T): () => void {
  set.add(item);
  return () => set.delete(item);
}

/** What the connection (connection.ts) tells the app's callbacks, and asks of them. */
export interface ClientEvents {
  /** The onSession callbacks; the connection holds the queue only when there is one. */
  readonly session: { readonly size: number };
  /** The onError callbacks; with none, a fatal error is printed. */
  readonly error: { readonly size: number };
  stateChanged(state: ConnectionState, info: StateInfo): void;
  sessionReset(): void;
  failed(error: ChatterError): void;
  setUpSession(release: () => void): void;
}

/** The callbacks registered on the client `C` (ChatterClient), which each onSession callback is given. */
export class Listeners<C> implements ClientEvents {
  readonly state = new Set<StateListener>();
  readonly reset = new Set<() => unknown>();
  readonly session = new Set<(client: C) => unknown>();
  readonly error = new Set<(error: ChatterError) => unknown>();
  /** Counts session setups, so only the newest one releases the queue. */
  #setupRun = 0;
  readonly #client: C;
  readonly #log: Log;

  constructor(client: C, log: Log) {
    this.#client = client;
    this.#log = log;
  }

  stateChanged(state: ConnectionState, info: StateInfo): void {
    for (const listener of [...this.state]) notify("state listener", () => listener(state, info));
  }

  sessionReset(): void {
    for (const listener of [...this.reset]) notify("reset listener", listener);
  }

  failed(error: ChatterError): void {
    if (this.error.size === 0) this.#log?.(`${error.code}: ${error.message}`);
    for (const listener of [...this.error]) notify("error listener", () => listener(error));
  }

  /** Runs the onSession callbacks, then calls `release` to let the queued calls go; a callback that fails goes to onError. */
  setUpSession(release: () => void): void {
    const run = ++this.#setupRun;
    const settled = [...this.session].map((listener) => new Promise<unknown>((resolve) => resolve(listener(this.#client))));
    void Promise.allSettled(settled).then((results) => {
      for (const r of results) {
        if (r.status === "rejected") this.failed(asChatterError(r.reason, "an onSession callback failed"));
      }
      // A newer fresh session runs its own setup and ends the hold itself.
      if (run === this.#setupRun) release();
    });
  }
}

/** Runs a callback; a throw or a rejection is logged, never rethrown. */
function notify(what: string, run: () => unknown): void {
  try {
    const out = run();
    if (out instanceof Promise) out.catch((err) => report(what, err));
  } catch (err) {
    report(what, err);
  }
}

function report(what: string, err: unknown): void {
  console.error(`[chatter] client: ${what} failed:`, err);
}

/** @returns `reason` as a ChatterError, for onError */
function asChatterError(reason: unknown, what: string): ChatterError {
  return reason instanceof ChatterError ? reason : new ChatterError("HANDLER_ERROR", `${what}: ${describeThrown(reason)}`);
}
