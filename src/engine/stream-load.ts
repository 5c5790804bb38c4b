/**
 * The stream code loads on first use. Reading (stream-calls.ts, stream-reader.ts) and writing
 * (stream-writers.ts, stream-writer.ts) are about a sixth of a browser client, and most apps never open a
 * stream, so a bundler that splits code at `import()` leaves them out of what an app loads before its first
 * call. This file is what stays behind: the checks that must answer at once, a stand-in for a reader's first
 * stream while its code loads, and one for the writers while theirs does.
 */
import { ChatterError, describeThrown } from "../errors.ts";
import type { Proc } from "../proc.ts";
import type { CallContext } from "./context.ts";
import type { StreamCalls } from "./stream-calls.ts";
import type { StreamWriters, WritersHost } from "./stream-writers.ts";
import type { ChatterStream, StreamOptions } from "./types.ts";

type Code<T> = { module: T | null; loading: Promise<T> | null; import: () => Promise<T> };
const reader: Code<typeof import("./stream-calls.ts")> = { module: null, loading: null, import: () => import("./stream-calls.ts") };
const writer: Code<typeof import("./stream-writers.ts")> = { module: null, loading: null, import: () => import("./stream-writers.ts") };
/** Where each side's code stands; tests hold it back or make it fail. */
export const streamCode = { reader, writer };

/** Starts loading a module once (again after a failure); `code.module` is set when it is in. */
function load<T>(code: Code<T>): Promise<T> {
  code.loading ??= code.import().then(
    (m) => (code.module = m),
    (err) => {
      code.loading = null;
      throw err;
    },
  );
  return code.loading;
}

/** @returns the reader's code, loading it if need be */
const readerCode = () => load(reader);
/** @returns the writers' code, loading it if need be */
const writerCode = () => load(writer);

/** Loads stream code ahead of need (a failure is reported to the stream that needs it). */
function preload<T>(code: Code<T>): void {
  // Once only: a server calls this for every connection.
  if (!code.loading) load(code).catch(() => {});
}
/** Loads the writers' code now, so it is in by the time a stream CALL comes (`.on` of a stream, or a server). */
export const preloadWriters = () => preload(writer);
/** Loads the reader's code now (a server's first connection). */
export const preloadReader = () => preload(reader);

/** @returns the error for stream code that could not be loaded (in a browser: its chunk failed to download) */
function unloaded(name: string, err: unknown): ChatterError {
  return new ChatterError("UNAVAILABLE", `stream "${name}": the stream code could not be loaded (${describeThrown(err)})`);
}

/** Items the writer may send ahead of the loop, unless `window` says otherwise. */
export const DEFAULT_WINDOW = 64;

/** @returns the reader's window (its credit), checked at once, before any code loads */
export function streamWindow(proc: Proc, options: StreamOptions | undefined): number {
  const window = options?.window ?? DEFAULT_WINDOW;
  if (!(Number.isInteger(window) && window > 0)) {
    throw new TypeError(`[chatter] stream "${proc.name}": window must be a whole number above 0`);
  }
  return window;
}

/** @returns `make`'s reader now if the reader's code is in, else a stand-in that loads it at the loop's first `next()` */
export function openStream(
  proc: Proc,
  make: (m: typeof import("./stream-calls.ts")) => StreamCalls,
  args: readonly [input: unknown, options: StreamOptions | undefined, window: number],
): ChatterStream<unknown> {
  const open = (m: typeof import("./stream-calls.ts")) => make(m).stream(proc, ...args);
  if (reader.module) return open(reader.module);
  preloadReader(); // From now, not from the loop's first next(): the loop is likely to follow at once.
  return new LoadingStream(proc.name, open);
}
const DONE: IteratorResult<unknown, undefined> = { done: true, value: undefined };

/** The first stream of a process, while the reader's code loads: the CALL goes out once it is in. */
class LoadingStream implements ChatterStream<unknown> {
  private stream: ChatterStream<unknown> | null = null;
  private opening: Promise<ChatterStream<unknown> | null> | null = null;
  /** Left before its reader was made: nothing was sent, and there is nothing to cancel. */
  private left = false;

  constructor(
    private readonly name: string,
    private readonly open: (m: typeof import("./stream-calls.ts")) => ChatterStream<unknown>,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<unknown, undefined>> {
    if (this.stream) return this.stream.next();
    if (this.left) return Promise.resolve(DONE);
    this.opening ??= readerCode().then(
      (m) => {
        if (!this.left) this.stream = this.open(m);
        return this.stream;
      },
      (err) => Promise.reject(unloaded(this.name, err)),
    );
    return this.opening.then((stream) => (stream ? stream.next() : DONE));
  }

  return(): Promise<IteratorResult<unknown, undefined>> {
    if (this.stream) return this.stream.return();
    this.left = true;
    return Promise.resolve(DONE);
  }
}

/** What the answering half (answers.ts) asks of the streams it writes: StreamWriters, or its stand-in. */
export type Writers = Pick<StreamWriters, "size" | "start" | "credit" | "cancel" | "repeat" | "pauseAll" | "forgetBelow" | "reset">;

/**
 * @param swap - puts the writers made once their code is in where the stand-in was (null: the code failed to load)
 * @returns the writers of `host`, made now if their code is in, else a stand-in until it is
 */
export function streamWriters(host: WritersHost, swap: (real: StreamWriters | null) => void): Writers {
  return writer.module ? new writer.module.StreamWriters(host) : new LoadingWriters(host, swap);
}

/**
 * Stands in for StreamWriters while their code loads. A stream started meanwhile counts as running at once, as
 * one whose handler's promise is pending does: a CANCEL aborts its context, so its writer never starts, and a
 * repeat of its CALL after a resume waits. The rest (the start, CREDITs, a resume's pause) is told to the
 * writers once made, in the order it came.
 */
class LoadingWriters implements Writers {
  readonly size = 0;
  /** What the writers are told once made; null once the session is gone. */
  private due: ((w: StreamWriters) => void)[] | null = [];
  private readonly started: [number, CallContext][] = [];

  constructor(
    private readonly host: WritersHost,
    swap: (real: StreamWriters | null) => void,
  ) {
    writerCode().then(
      (m) => {
        const due = this.due;
        if (!due) return;
        const real = new m.StreamWriters(host);
        swap(real);
        for (const tell of due) tell(real);
      },
      (err) => {
        if (!this.due) return;
        swap(null); // The next stream tries loading again.
        for (const [id, ctx] of this.started) if (host.running.get(id) === ctx) host.answerError(id, unloaded(ctx.proc, err), ctx);
      },
    );
  }

  start(id: number, proc: Proc, out: unknown, ctx: CallContext, credit: number): void {
    this.host.running.set(id, ctx);
    this.started.push([id, ctx]);
    this.due?.push((w) => w.start(id, proc, out, ctx, credit));
  }

  credit(id: number, received: number, limit: number): void {
    this.due?.push((w) => w.credit(id, received, limit));
  }

  pauseAll(): void {
    this.due?.push((w) => w.pauseAll());
  }

  cancel(): boolean {
    return false;
  }

  repeat(): boolean {
    return false;
  }

  forgetBelow(): void {}

  reset(): void {
    this.due = null; // The answering half aborts and forgets every running call.
  }
}

/** @returns the error for a CALL that reads a stream as a call, or a call as a stream */
export function misread(name: string, credit: number | undefined): ChatterError {
  if (credit === undefined) return new ChatterError("NOT_IMPLEMENTED", `"${name}" yields a stream: read it with stream(), not call()`);
  return new ChatterError("NOT_IMPLEMENTED", `"${name}" is not a stream (it has no yields): use call(), not stream()`);
}
