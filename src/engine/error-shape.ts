/**
 * How an end turns a failed call into the error its caller gets: the wire
 * form of what was thrown, reshaped by `formatError` when the end has one,
 * and logged with its real cause whatever `formatError` hides.
 */
import { ChatterError, toWireError, type WireError } from "../errors.ts";
import type { CallContext } from "./context.ts";
import type { PeerOptions } from "./types.ts";

/**
 * @param opts - the end's options (`formatError`, `exposeStack`, `log`, `onError`)
 * @param owner - the client or server connection, for `onError`
 * @returns the error in wire form
 */
export function wireError(opts: PeerOptions, owner: unknown, err: unknown, ctx: CallContext): WireError {
  const stack = opts.exposeStack ?? false;
  const format = opts.formatError;
  const log = opts.log;
  if (!format || log) {
    const wire = toWireError(err, ctx.proc, stack);
    // The log keeps the real cause, whatever formatError hides from the caller.
    log?.(`call to "${ctx.proc}" failed: ${wire.code} ${wire.message}`);
    if (!format) return wire;
  }
  try {
    const shaped: unknown = format(err, ctx);
    if (shaped instanceof ChatterError) return shaped.toWire(stack);
    const what = shaped === null ? "null" : shaped instanceof Error ? "an Error" : `a value of type ${typeof shaped}`;
    throw new TypeError(`[chatter] formatError returned ${what} for "${ctx.proc}", not a ChatterError`);
  } catch (bad) {
    report(opts, owner, bad);
    // Nothing of the original: hiding it may be why formatError is there.
    return { code: "HANDLER_ERROR", message: `call to "${ctx.proc}" failed` };
  }
}

/** Hands a failure of this end's own hooks to `onError` (the server's), or the console. */
function report(opts: PeerOptions, owner: unknown, err: unknown): void {
  try {
    if (opts.onError) opts.onError(err, owner as never);
    else console.error(`[chatter] ${opts.side}:`, err);
  } catch {
    // A reporter that throws must not stop the answer.
  }
}
