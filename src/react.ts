/** `chatter/react`: React bindings for a Chatter client. */
export {
  ChatterProvider,
  type ChatterProviderProps,
  type ConnectionStatus,
  type ProcState,
  type ProcStatus,
  useChatter,
  useConnectionState,
  useHandler,
  useProc,
} from "./react/hooks.ts";
export { type StreamState, type StreamStatus, type UseStreamOptions, useStream } from "./react/stream.ts";
