/**
 * The close codes the client uses, each typed as CloseCode's own (wire/frames.ts), so a change there fails to
 * compile here. Constants in a module of their own, not reads of CloseCode: a bundler writes the numbers where
 * they are used and leaves the public table, every name in it, out of a browser's bundle.
 */
import type { CloseCode } from "../wire/frames.ts";

export const PROTOCOL_ERROR: typeof CloseCode.ProtocolError = 1002;
export const VERSION_MISMATCH: typeof CloseCode.VersionMismatch = 4000;
export const HANDSHAKE_TIMEOUT: typeof CloseCode.HandshakeTimeout = 4001;
export const PING_TIMEOUT: typeof CloseCode.PingTimeout = 4002;
export const CLIENT_CLOSED: typeof CloseCode.ClientClosed = 4004;
