/**
 * useStream: a server stream's items as React state. Apart from hooks.ts for its size, and because it owns two
 * decisions worth reading on their own: when a new input restarts the stream (inputKey) and how often items
 * re-render (one state update per animation frame).
 * Docs: https://react.dev/reference/react/useState#storing-information-from-previous-renders
 */
import { useEffect, useState } from "react";
import type { ChatterClient } from "../client/client.ts";
import type { StreamOptions } from "../engine/types.ts";
import type { ChatterError } from "../errors.ts";
import type { ItemOf, Proc, StreamArgs } from "../proc.ts";
import { useChatter } from "./hooks.ts";

/** Where a stream read by {@link useStream} stands. */
export type StreamStatus = "idle" | "streaming" | "done" | "error";

/**
 * Options of {@link useStream}, after the input. `timeout` and `window` are `client.stream`'s, read when the
 * stream starts: changing them alone does not restart it.
 */
export interface UseStreamOptions extends Omit<StreamOptions, "signal"> {
  /** `false` stops the stream and resets the state to `idle`; `true` again starts afresh. Defaults to `true`. */
  enabled?: boolean;
}

/** What {@link useStream} returns. */
export interface StreamState<P extends Proc> {
  /** Every item so far, oldest first; a new array whenever items arrive, so it works as an effect dependency. */
  items: ItemOf<P>[];
  /** The last item, or `undefined` before the first. */
  latest: ItemOf<P> | undefined;
  /** `streaming` from the first render that asks for the stream, until it ends (`done`) or fails (`error`). */
  status: StreamStatus;
  /** Why the stream failed, when `status` is `error`. */
  error: ChatterError | undefined;
}

/** The state, and what it was made for: a change to any of these starts from a fresh state, in that same render. */
interface Run<P extends Proc> extends StreamState<P> {
  /** New for each fresh state and kept as items arrive: the run the effect starts and the updates belong to. */
  id: object;
  client: ChatterClient;
  proc: P;
  key: string;
  enabled: boolean;
}

const fresh = <P extends Proc>(client: ChatterClient, proc: P, key: string, enabled: boolean): Run<P> => ({
  id: {},
  client,
  proc,
  key,
  enabled,
  items: [],
  latest: undefined,
  status: enabled ? "streaming" : "idle",
  error: undefined,
});

/**
 * Reads a server stream while the component is mounted, as state that re-renders at most once per animation
 * frame (once per task where there is no `requestAnimationFrame`), however fast items come; the end or an
 * error shows at once. Unmounting, `enabled: false`, or a new input aborts the stream, which cancels the
 * server's generator; a new input then starts it again with that input, from no items.
 *
 * The input is compared by value, as the wire would carry it: a new but equal object literal on every render
 * keeps the stream running, and a changed field, array element, Map or Set entry, Date or byte restarts it.
 * Under StrictMode the stream starts once: its start waits a microtask, and the immediate dev-only cleanup
 * cancels it before anything is sent.
 * @param proc - a stream procedure (one with `yields`), made with `createProc`
 * @param args - its input (omit it, or pass `null`, when it takes none), then `{ enabled, timeout, window }`
 * @returns `items`, `latest`, `status` and `error`
 */
export function useStream<P extends Proc>(proc: P, ...args: StreamArgs<P, UseStreamOptions>): StreamState<P> {
  const client = useChatter();
  const input: unknown = args[0];
  const { enabled = true, ...options } = (args[1] as UseStreamOptions | undefined) ?? {};
  const key = inputKey(input);
  const [run, setRun] = useState(() => fresh(client, proc, key, enabled));
  let current = run;
  if (run.client !== client || run.proc !== proc || run.key !== key || run.enabled !== enabled) {
    // Storing what the previous render saw: React re-renders at once, before anything stale is shown.
    current = fresh(client, proc, key, enabled);
    setRun(current);
  }

  // `current.id` is new exactly when client, proc, the input's key or enabled change. The input is read from
  // the render that made it: later, equal inputs change nothing.
  // biome-ignore lint/correctness/useExhaustiveDependencies: `current.id` stands for all the others
  useEffect(() => {
    if (!enabled) return;
    const controller = new AbortController();
    let live = true;
    let pending: ItemOf<P>[] = [];
    let cancelFrame: (() => void) | undefined;
    const flush = (end?: Pick<StreamState<P>, "status" | "error">) => {
      cancelFrame?.();
      cancelFrame = undefined;
      const batch = pending;
      pending = [];
      setRun((r) => {
        if (r.id !== current.id) return r; // A later input's state: these items are not its.
        const grown = batch.length ? { items: [...r.items, ...batch], latest: batch[batch.length - 1] } : {};
        return { ...r, ...grown, ...end };
      });
    };
    const read = async () => {
      try {
        const streamArgs: unknown[] = [input, { ...options, signal: controller.signal }];
        for await (const item of client.stream(proc, ...(streamArgs as StreamArgs<P, StreamOptions>))) {
          if (!live) return;
          pending.push(item);
          cancelFrame ??= nextFrame(() => live && flush());
        }
        if (live) flush({ status: "done", error: undefined });
      } catch (error) {
        if (live) flush({ status: "error", error: error as ChatterError });
      }
    };
    queueMicrotask(() => live && void read());
    return () => {
      live = false;
      cancelFrame?.();
      controller.abort();
    };
  }, [current.id]);

  return { items: current.items, latest: current.latest, status: current.status, error: current.error };
}

/** Runs `fn` before the next paint (or in the next task); @returns a function that cancels it */
function nextFrame(fn: () => void): () => void {
  if (typeof requestAnimationFrame === "function") {
    const id = requestAnimationFrame(fn);
    return () => cancelAnimationFrame(id);
  }
  const id = setTimeout(fn, 0);
  return () => clearTimeout(id);
}

/**
 * A string equal for two inputs exactly when the wire would carry equal values: plain objects (in any key
 * order), arrays, Map, Set, Date, Uint8Array, bigint, undefined and the primitives. JSON is not enough: it
 * throws on a bigint and writes every Map and Set as `{}`.
 * @param value - the stream's input
 * @returns its key; throws a TypeError for an input that refers to itself, which could not be sent either
 */
export function inputKey(value: unknown, path: unknown[] = []): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
    case "boolean":
      return String(value);
    case "bigint":
      return `${value}n`;
    case "undefined":
      return "undefined";
    case "object":
      break;
    default:
      return typeof value; // Functions and symbols cannot be sent; the call will say so.
  }
  if (value === null) return "null";
  if (value instanceof Date) return `Date(${value.getTime()})`;
  if (value instanceof Uint8Array) return `Bytes(${value.join(",")})`;
  if (path.includes(value)) throw new TypeError("[chatter] useStream: the input refers to itself, so it cannot be sent");
  const inner = [...path, value];
  const key = (v: unknown) => inputKey(v, inner);
  if (Array.isArray(value)) return `[${value.map(key).join(",")}]`;
  if (value instanceof Map) return `Map(${[...value].map(([k, v]) => `${key(k)}=>${key(v)}`).join(",")})`;
  if (value instanceof Set) return `Set(${[...value].map(key).join(",")})`;
  const fields = Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${key((value as Record<string, unknown>)[k])}`);
  return `{${fields.join(",")}}`;
}
