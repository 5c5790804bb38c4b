/**
 * One broadcast for `server.broadcast`, `server.in(topics).broadcast` and
 * `connection.broadcast`: the input is checked once (synchronously where the
 * schema allows, which keeps broadcasts in order), then the core fans it out.
 */
import { type Proc, parse } from "../proc.ts";
import type { Session, SessionHost } from "./session.ts";

/**
 * A broadcast's promise. It notes whether the caller took the outcome (`then`, `catch`, `await`), so that a
 * failure nobody takes goes to `onError` rather than becoming an unhandled rejection that ends the process.
 */
class Broadcast extends Promise<void> {
  /** Promises made from this one (by then, catch, finally) are plain promises. */
  static override get [Symbol.species]() {
    return Promise;
  }
  #taken = false;

  /** @returns a broadcast's promise that settles as `work` does; its failure goes to `report` unless taken */
  static of(work: Promise<unknown>, report: (err: unknown) => void): Promise<void> {
    const out = new Broadcast((resolve, reject) => work.then(() => resolve(), reject));
    // Handled as far as the runtime knows; whether the caller took it is judged once the caller's tick is over.
    Promise.prototype.then.call(out, undefined, (err: unknown) => setImmediate(() => out.#taken || report(err)));
    return out;
  }

  // biome-ignore lint/suspicious/noThenProperty: a promise's own then, overridden only to note that it was called
  override then<A = void, B = never>(...args: Parameters<Promise<void>["then"]>): Promise<A | B> {
    this.#taken = true;
    return super.then(...args) as Promise<A | B>;
  }
}

/**
 * Checks a broadcast's input, then fans it out.
 * @returns a promise that resolves once the broadcast is handed to the subscribers (in a cluster: once the
 *   cluster's log has it, so it reaches every subscriber whatever happens to this instance), or rejects with
 *   the `VALIDATION` error (or, in a cluster, `LIMIT` or `DISCONNECTED` when it was lost); never throws
 */
export function broadcastFrom(
  host: SessionHost,
  topics: string | Iterable<string>,
  proc: Proc,
  input: unknown,
  exclude: ReadonlySet<Session>,
  volatile = false,
): Promise<void> {
  const report = (err: unknown) => host.report(err);
  try {
    const checked = parse(proc.takes, input, proc.name, "input");
    if (!(checked instanceof Promise)) {
      const logged = host.broadcast(topics, proc, input, exclude, volatile);
      return logged ? Broadcast.of(logged, report) : Promise.resolve();
    }
    const list = typeof topics === "string" ? topics : [...topics]; // Read now: the caller may change its set meanwhile.
    return Broadcast.of(
      checked.then(() => host.broadcast(list, proc, input, exclude, volatile)),
      report,
    );
  } catch (err) {
    return Broadcast.of(Promise.reject(err), report);
  }
}
