/**
 * React bindings: a provider for one client, and hooks for its connection
 * state, for calling procedures, and for implementing client procedures for a
 * component's lifetime. Safe under StrictMode, where effects run twice.
 * Docs: https://react.dev/reference/react/useSyncExternalStore
 */
import {
  createContext,
  createElement,
  type ReactNode,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
} from "react";
import type { ChatterClient, ClientHandler } from "../client/client.ts";
import { ConnectionState } from "../client/state.ts";
import type { CallOptions } from "../engine/types.ts";
import type { ChatterError } from "../errors.ts";
import type { CallArgs, HandlerOutput, ParsedInputOf, Proc, ResultOf } from "../proc.ts";

const ClientContext = createContext<ChatterClient | null>(null);

/** Props of {@link ChatterProvider}. */
export interface ChatterProviderProps {
  client: ChatterClient;
  children?: ReactNode;
}

/**
 * Makes a client available to the hooks below it.
 * @param props - `client`, made with `createClient`, and `children`
 */
export function ChatterProvider({ client, children }: ChatterProviderProps) {
  return createElement(ClientContext.Provider, { value: client }, children);
}

/** @returns the client from the nearest {@link ChatterProvider}; throws without one */
export function useChatter(): ChatterClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error("[chatter] useChatter needs a <ChatterProvider client={...}> above this component");
  return client;
}

/** What {@link useConnectionState} reports. */
export interface ConnectionStatus {
  state: ConnectionState;
  isConnected: boolean;
  /** The current connection resumed the previous session, with its calls and broadcasts intact. */
  resumed: boolean;
  /** The server could not resume the session and started a fresh one: re-fetch your state. Stays true until a later resume. */
  reset: boolean;
  /** How many resets this component has seen; handy as an effect dependency to re-fetch on. */
  resets: number;
}

/** One store per client, so every component reads the same snapshot object between changes. */
const stores = new WeakMap<ChatterClient, { subscribe(fn: () => void): () => void; get(): ConnectionStatus }>();

function storeFor(client: ChatterClient) {
  let store = stores.get(client);
  if (store) return store;
  let resets = 0;
  let reset = false;
  const read = (): ConnectionStatus => ({ state: client.state, isConnected: client.isConnected, resumed: client.resumed, reset, resets });
  let snapshot = read();
  const listeners = new Set<() => void>();
  const changed = () => {
    snapshot = read();
    for (const fn of listeners) fn();
  };
  client.onStateChange((state, { resumed }) => {
    if (state === ConnectionState.Connected && resumed) reset = false;
    changed();
  });
  client.onReset(() => {
    resets++;
    reset = true;
    changed();
  });
  store = {
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    get: () => snapshot,
  };
  stores.set(client, store);
  return store;
}

/** @returns the connection's state, re-rendering on every change */
export function useConnectionState(): ConnectionStatus {
  const store = storeFor(useChatter());
  return useSyncExternalStore(store.subscribe, store.get, store.get);
}

/** The status of the latest call made through {@link useProc}. */
export type ProcStatus = "idle" | "pending" | "success" | "error";

/** What {@link useProc} returns. */
export interface ProcState<P extends Proc> {
  /** Calls the procedure; stable across renders. Its promise settles as `client.call`'s does (a stream is a type error: see `useStream`). */
  call: (...args: CallArgs<P, CallOptions>) => Promise<ResultOf<P>>;
  status: ProcStatus;
  /** The latest successful call's result. */
  result: ResultOf<P> | undefined;
  /** The latest failed call's error. */
  error: ChatterError | undefined;
}

type Outcome<P extends Proc> = Pick<ProcState<P>, "status" | "result" | "error">;

/**
 * Calls a server procedure and tracks the latest call. Only the latest call's
 * outcome is shown, whatever order answers arrive in; calls after unmount still
 * run but change nothing.
 * @param proc - the procedure, made with `createProc`
 * @returns `call`, and the latest call's `status`, `result` and `error`
 */
export function useProc<P extends Proc>(proc: P): ProcState<P> {
  const client = useChatter();
  const [outcome, setOutcome] = useState<Outcome<P>>({ status: "idle", result: undefined, error: undefined });
  const latest = useRef(0);
  const mounted = useRef(false);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  const call = useCallback(
    (...args: CallArgs<P, CallOptions>) => {
      const id = ++latest.current;
      const settle = (next: Outcome<P>) => {
        if (mounted.current && id === latest.current) setOutcome(next);
      };
      settle({ status: "pending", result: undefined, error: undefined });
      const promise = client.call(proc, ...args);
      promise.then(
        (result) => settle({ status: "success", result, error: undefined }),
        (error: ChatterError) => settle({ status: "error", result: undefined, error }),
      );
      return promise;
    },
    [client, proc],
  );
  return { call, ...outcome };
}

/**
 * Implements a client procedure while the component is mounted. The latest
 * `handler` is always the one called, without registering again on re-render.
 * @param proc - the procedure, made with `createProc`
 * @param handler - gets the parsed input, the client and the call's context
 */
export function useHandler<P extends Proc>(proc: P, handler: ClientHandler<ParsedInputOf<P>, HandlerOutput<P>>): void {
  const client = useChatter();
  const current = useRef(handler);
  current.current = handler;
  useEffect(() => client.on(proc, (input, c, ctx) => current.current(input, c, ctx)), [client, proc]);
}
