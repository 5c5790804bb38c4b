/**
 * What a client is given and what it hands back, as types only: the options of `createClient` and the shape
 * of a state listener. They sit apart from the code so a reader of the public API finds every knob in one
 * place, and so connection.ts, session.ts and client.ts can share them. Nothing here names ChatterClient
 * (ClientHandler, which must, lives in client.ts), so the modules below the client never import it.
 */
import type { ConnectionState } from "./state.ts";

/** The standard WebSocket constructor, or a compatible one such as `ws`'s. */
export type WebSocketConstructor = new (url: string) => WebSocket;

/** Options of `createClient`. */
export interface ClientOptions {
  /**
   * The server URL, `ws://` or `wss://` (`http(s)://` is turned into `ws(s)://`). Or a function that returns
   * it, called before every connection attempt: for fresh credentials in the query string. With a function, a
   * client whose connection is refused (UNAUTHORIZED, FORBIDDEN) keeps trying, since its credentials may change.
   */
  url: string | (() => string | Promise<string>);
  /** Log what happens and why. */
  verbose?: boolean;
  /** Seconds between keepalive pings. Defaults to 30. A ping unanswered by the next one drops the socket. */
  pingInterval?: number;
  /** The WebSocket class to use; needed on Node 20 (`import WebSocket from "ws"`). Defaults to the global one. */
  WebSocket?: WebSocketConstructor;
  /**
   * A client id kept from an earlier run (`client.clientId`), with its `clientKey`.
   * Without the key the server does not accept the id and assigns a fresh one.
   */
  clientId?: string;
  /** The key that proves `clientId` (`client.clientKey` of the earlier run). Keep it secret. */
  clientKey?: string;
  /** Reconnect after a drop. Defaults to `{ minDelay: 250, maxDelay: 30_000 }` (ms); `false` turns it off. */
  reconnect?: false | { minDelay?: number; maxDelay?: number };
  /** Calls kept while disconnected; more fail at once with `LIMIT`. Defaults to 1000. */
  maxQueue?: number;
  /** Send handler stacks to the server with `HANDLER_ERROR`. */
  exposeStack?: boolean;
  /** Milliseconds a socket has to open and finish the handshake before it is dropped and retried. Defaults to 10 000. */
  connectTimeout?: number;
}

/** What a state listener learns besides the state. */
export interface StateInfo {
  /** On `Connected`: whether the previous session resumed, with its calls and broadcasts intact. */
  resumed: boolean;
}

/** A callback of `onStateChange`. */
export type StateListener = (state: ConnectionState, info: StateInfo) => unknown;

/** Where the client's verbose log goes; undefined when `verbose` is off. */
export type Log = ((msg: string) => void) | undefined;
