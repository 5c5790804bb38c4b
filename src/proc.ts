import type { StandardSchemaV1 } from "@standard-schema/spec";
import { ChatterError, describeIssues, plainIssues } from "./errors.ts";

/** Any Standard Schema validator (Zod, Valibot, ArkType, ...). */
export type Schema = StandardSchemaV1;

/**
 * A procedure: a name and, optionally, schemas for what it takes and returns. A procedure with `yields` is a
 * stream: its handler yields many items, and callers read them with `stream` instead of `call`.
 */
export interface Proc<
  TTakes extends Schema | null = Schema | null,
  TReturns extends Schema | null = Schema | null,
  TYields extends Schema | null = Schema | null,
> {
  /** Identifies the procedure on the wire; unique per app. */
  readonly name: string;
  /** Validates the input, or `null` when the procedure takes nothing. */
  readonly takes: TTakes;
  /** Validates the result, or `null` when the procedure returns nothing (always for a stream). */
  readonly returns: TReturns;
  /** Validates each item of a stream, or `null` when the procedure is not a stream. */
  readonly yields: TYields;
  /** Milliseconds a caller waits for the result (for a stream: for each next item) before failing with `TIMEOUT`. */
  readonly timeout: number | undefined;
}

/** Options for {@link createProc}. */
export interface ProcOptions<TTakes extends Schema | undefined, TReturns extends Schema | undefined, TYields extends Schema | undefined> {
  /** A string that identifies the procedure; by convention snake_case. */
  name: string;
  /** Schema for the data the procedure takes. Omit it and `null` is used. */
  takes?: TTakes;
  /** Schema for the data the procedure returns. Omit it and `null` is used. Not with `yields`. */
  returns?: TReturns;
  /** Schema for each item the procedure yields: it is a stream. Not with `returns`. */
  yields?: TYields;
  /** Milliseconds to wait for the result (a stream: for each next item). Defaults to 30 000; `0` or `Infinity` waits for ever. */
  timeout?: number;
}

type OrNull<T> = T extends Schema ? T : null;

/** What a caller passes: the `takes` schema's input type, or `null`. */
export type InputOf<P> = P extends Proc<infer T, Schema | null> ? (T extends Schema ? StandardSchemaV1.InferInput<T> : null) : never;
/** What a handler receives: the `takes` schema's output type, or `null`. */
export type ParsedInputOf<P> = P extends Proc<infer T, Schema | null> ? (T extends Schema ? StandardSchemaV1.InferOutput<T> : null) : never;
/** What a handler returns: the `returns` schema's input type. */
export type ReturnOf<P> = P extends Proc<Schema | null, infer R> ? (R extends Schema ? StandardSchemaV1.InferInput<R> : unknown) : never;
/** A value, or a promise of it: what a handler may return. */
export type MaybePromise<T> = T | Promise<T>;
/**
 * What a handler of `P` returns: the `returns` schema's input type or a promise of it, so a handler that forgets
 * to return fails to compile instead of failing `VALIDATION` at run time. Anything (nothing too) without `returns`.
 */
export type HandlerReturn<P> = MaybePromise<ReturnOf<P>>;
/** What a caller's promise resolves to: the `returns` schema's output type, or `null`. */
export type ResultOf<P> = P extends Proc<Schema | null, infer R> ? (R extends Schema ? StandardSchemaV1.InferOutput<R> : null) : never;

/** The input argument of `call` and `broadcast`: optional when the procedure takes nothing. */
export type InputArgs<P> =
  P extends Proc<infer T, Schema | null> ? (T extends Schema ? [input: StandardSchemaV1.InferInput<T>] : [input?: null]) : never;

/** What a stream's handler yields: the `yields` schema's input type. */
export type YieldOf<P> =
  P extends Proc<Schema | null, Schema | null, infer Y> ? (Y extends Schema ? StandardSchemaV1.InferInput<Y> : never) : never;
/** What a stream's reader gets for each item: the `yields` schema's output type. */
export type ItemOf<P> =
  P extends Proc<Schema | null, Schema | null, infer Y> ? (Y extends Schema ? StandardSchemaV1.InferOutput<Y> : never) : never;
/**
 * What a handler of `P` returns: for a stream, any `AsyncIterable` of its items (an `async function*`), or a
 * promise of one; otherwise the `returns` schema's input type, or a promise of it.
 */
export type HandlerOutput<P> =
  P extends Proc<Schema | null, Schema | null, infer Y>
    ? Y extends Schema
      ? AsyncIterable<StandardSchemaV1.InferInput<Y>>
      : ReturnOf<P>
    : never;
/** Whether `P` is known to be a stream (it has `yields`); a `Proc` that may be either is not. */
export type IsStream<P> = P extends Proc<Schema | null, Schema | null, infer Y> ? (Y extends Schema ? true : false) : false;
/** The arguments of `call` after the procedure; for a stream, a type error that says to use `stream`. */
export type CallArgs<P, O> =
  IsStream<P> extends true ? [useStreamInstead: "this procedure yields: read it with stream()"] : [...InputArgs<P>, options?: O];
/** The arguments of `stream` after the procedure; for a procedure that is not a stream, a type error. */
export type StreamArgs<P, O> =
  IsStream<P> extends true ? [...InputArgs<P>, options?: O] : [useCallInstead: "this procedure has no yields: use call()"];

/**
 * Declares a procedure once, in a file shared by both ends. It only describes
 * the signature; implement it with `.on(proc, handler)` on either end.
 * @param options - the name, the optional `takes` schema, a `returns` or a `yields` schema, and the timeout
 * @returns the procedure, to pass to `on`, `call` and `broadcast`
 */
export function createProc<
  TTakes extends Schema | undefined = undefined,
  TReturns extends Schema | undefined = undefined,
  TYields extends Schema | undefined = undefined,
>(
  options: ProcOptions<TTakes, TReturns, TYields> & (TReturns extends Schema ? { yields?: undefined } : unknown),
): Proc<OrNull<TTakes>, OrNull<TReturns>, OrNull<TYields>> {
  if (typeof options?.name !== "string" || options.name.length === 0) {
    throw new TypeError("[chatter] createProc needs a non-empty `name`");
  }
  if (options.timeout !== undefined && !(options.timeout >= 0)) {
    throw new TypeError(`[chatter] createProc "${options.name}": timeout must be a number of milliseconds >= 0`);
  }
  if (options.returns !== undefined && options.yields !== undefined) {
    throw new TypeError(`[chatter] createProc "${options.name}": a procedure has \`returns\` or \`yields\`, not both`);
  }
  for (const key of ["takes", "returns", "yields"] as const) {
    const schema = options[key];
    if (schema !== undefined && typeof schema?.["~standard"]?.validate !== "function") {
      throw new TypeError(`[chatter] createProc "${options.name}": \`${key}\` is not a Standard Schema validator`);
    }
  }
  return Object.freeze({
    name: options.name,
    takes: (options.takes ?? null) as OrNull<TTakes>,
    returns: (options.returns ?? null) as OrNull<TReturns>,
    yields: (options.yields ?? null) as OrNull<TYields>,
    timeout: options.timeout,
  });
}

/**
 * Adds a handler to one end's table, by procedure name. The same procedure again replaces its handler; a
 * different procedure of the same name throws, since both would share one handler whatever their schemas say.
 * @param handlers - the end's handlers, by procedure name
 * @param entry - the procedure and its handler
 * @param side - "server" or "client", for the message
 * @returns a function that removes this handler (and not one that replaced it)
 */
export function addHandler<E extends { proc: Proc }>(handlers: Map<string, E>, entry: E, side: string): () => void {
  const name = entry.proc.name;
  if ((handlers.get(name)?.proc ?? entry.proc) !== entry.proc) {
    throw new TypeError(
      `[chatter] ${side}.on("${name}"): a different procedure named "${name}" already has a handler; give each procedure its own name`,
    );
  }
  handlers.set(name, entry);
  return () => {
    if (handlers.get(name) === entry) handlers.delete(name);
  };
}

/** Which side of a call a value is parsed for; it shapes the error message. */
export type ParseKind = "input" | "output";

/**
 * Runs a schema, synchronously when the schema allows (most do), so the hot
 * path allocates no promise.
 * @returns the parsed value, or a promise of it; throws or rejects with `VALIDATION`
 */
export function parse(schema: Schema | null, value: unknown, proc: string, kind: ParseKind): unknown {
  if (schema === null) return null;
  const result = schema["~standard"].validate(value);
  if (result instanceof Promise) return result.then((r) => unwrap(r, proc, kind));
  return unwrap(result, proc, kind);
}

function unwrap(result: StandardSchemaV1.Result<unknown>, proc: string, kind: ParseKind): unknown {
  if (!result.issues) return result.value;
  const issues = plainIssues(result.issues);
  const omitted = result.issues.length - issues.length;
  const what = kind === "input" ? "input" : "result";
  throw new ChatterError("VALIDATION", `${what} of "${proc}" failed its schema: ${describeIssues(issues, omitted)}`, issues, omitted);
}
