/**
 * Middleware: functions that wrap every incoming call on one end (and every
 * broadcast a client receives), in the order they were registered, around
 * the handler. The engine runs them after `takes` has parsed the input and
 * before `returns` checks the result, so each sees validated input and may
 * refuse, change the input, or change or time the result.
 */
import type { CallContext } from "./context.ts";

/**
 * Runs the rest of the chain: the later middlewares, then the handler. Called
 * with no argument it passes the input on unchanged; called more than once it
 * rejects (the handler runs once per call).
 * @returns a promise of the rest of the chain's result
 */
export type Next = (input?: unknown) => Promise<unknown>;

/**
 * Wraps every incoming call and broadcast on one end: `server.use(mw)` or
 * `client.use(mw)`. Throw (e.g. a `ChatterError` with code `FORBIDDEN`) to
 * refuse; return `next(input)` to go on, with the same or a changed input;
 * `await next()` and return something else to change the result. What it
 * returns is the result, checked against `returns` after the whole chain.
 * The input it gets has been parsed by `takes` already; one it passes on is
 * not parsed again.
 * @param input - the parsed input (or what the middleware before it passed on)
 * @param owner - the calling connection on the server, the client on the client
 * @param ctx - the call's context: `ctx.proc` names the procedure, `ctx.signal` aborts with the call
 * @param next - runs the rest of the chain
 * @returns the result, or a promise of it
 */
export type Middleware<TOwner = unknown> = (input: unknown, owner: TOwner, ctx: CallContext, next: Next) => unknown;

/** A handler as the chain calls it, last. */
type Final = (input: unknown, owner: unknown, ctx: CallContext) => unknown;

/**
 * Runs `input` through the middlewares, then the handler.
 * @param list - the middlewares, outermost first; those registered meanwhile join the next call
 * @returns a promise of the result as the first middleware returned it
 */
export function runMiddleware(
  list: readonly Middleware<never>[],
  input: unknown,
  owner: unknown,
  ctx: CallContext,
  handler: Final,
): Promise<unknown> {
  const count = list.length;
  // Not an async function, and every promise handed out is marked handled: Bun (1.4.5) reports a rejection
  // inside a WebSocket handler as unhandled if its handler comes even one microtask later, as it does when
  // a middleware is `async (...) => next()`.
  const step = (i: number, value: unknown): Promise<unknown> => {
    try {
      if (i === count) return Promise.resolve(handler(value, owner, ctx));
      let used = false;
      const next: Next = (...args) => {
        // A second run of the rest would run the handler twice for one call.
        if (used) return handled(Promise.reject(new Error(`[chatter] middleware #${i + 1} called next() twice for "${ctx.proc}"`)));
        used = true;
        return handled(step(i + 1, args.length === 0 ? value : args[0]));
      };
      return Promise.resolve((list[i] as Middleware<unknown>)(value, owner, ctx, next));
    } catch (err) {
      return Promise.reject(err);
    }
  };
  return handled(step(0, input));
}

/** @returns the promise, marked as handled; its rejection still reaches whoever awaits it */
function handled(promise: Promise<unknown>): Promise<unknown> {
  promise.catch(ignore);
  return promise;
}

function ignore(): void {}

/**
 * Adds a middleware to the end of a peer configuration's chain.
 * @param opts - the peer options (one for all of a server's sessions, or the client's own)
 * @param middleware - `(input, owner, ctx, next) => result`
 * @returns a function that removes it
 */
export function addMiddleware<TOwner>(opts: { middleware?: Middleware<never>[] }, middleware: Middleware<TOwner>): () => void {
  const added = middleware as Middleware<never>;
  // A new array each time: a call in flight keeps the chain it started with.
  opts.middleware = [...(opts.middleware ?? []), added];
  return () => {
    opts.middleware = opts.middleware?.filter((m) => m !== added);
  };
}
