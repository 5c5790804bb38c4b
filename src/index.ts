/** `chatter`: procedures, the client and the server. Every name here is documented (docs/types.md lists the types). */
export { ChatterClient, type ClientHandler, type ClientOptions, createClient, type WebSocketConstructor } from "./client/client.ts";
export { ConnectionState } from "./client/state.ts";
export { CallContext } from "./engine/context.ts";
export type { Middleware, Next } from "./engine/middleware.ts";
export type { CallOptions, ChatterStream, StreamOptions } from "./engine/types.ts";
export { ChatterError, type ErrorCode, type ErrorIssue, type WireError } from "./errors.ts";
export {
  createProc,
  type HandlerOutput,
  type HandlerReturn,
  type InputOf,
  type ItemOf,
  type MaybePromise,
  type ParsedInputOf,
  type Proc,
  type ProcOptions,
  type ResultOf,
  type ReturnOf,
  type Schema,
  type YieldOf,
} from "./proc.ts";
export type { ClusterMember } from "./server/cluster.ts";
export { type ConnectionBroadcastOptions, ServerConnection } from "./server/connection.ts";
export { type BroadcastOptions, ChatterServer, type CloseOptions, createServer, type TopicScope } from "./server/index.ts";
export type { ServerHandler, ServerOptions } from "./server/options.ts";
export type { ConnectionRequest } from "./server/upgrade.ts";
export { CloseCode } from "./wire/frames.ts";
