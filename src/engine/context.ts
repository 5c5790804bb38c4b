import type { ChatterError } from "../errors.ts";

/**
 * The third argument every handler and middleware gets (and the second of
 * the server's `formatError`). It says which procedure runs and lets long
 * work stop when the caller gives up (timeout, abort, disconnect). For a
 * broadcast a client receives, `timeout` is 0 and `signal` never aborts.
 */
export class CallContext {
  /** The procedure's name. */
  readonly proc: string;
  /** The caller's timeout in milliseconds, or 0 when it waits for ever. */
  readonly timeout: number;
  #controller: AbortController | null = null;
  #reason: ChatterError | null = null;

  constructor(proc: string, timeout: number) {
    this.proc = proc;
    this.timeout = timeout;
  }

  /**
   * Aborts when the caller times out, cancels, or the connection is lost.
   * Made on first use, so handlers that never look pay nothing for it.
   */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#reason) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** @internal called by the engine when the call is given up. */
  abort(reason: ChatterError): void {
    if (this.#reason) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}
