/**
 * Connects a runtime adapter to the core: the adapter's driver is kept, and
 * the adapter gets the host it reports its sockets' events to (adapter.ts).
 */
import { ChatterError } from "../errors.ts";
import type { AdapterHost, SocketDriver } from "./adapter.ts";
import type { ServerCore } from "./core.ts";
import { admitSocket, HELLO_BYTES, openSocket, receive } from "./intake.ts";

/**
 * @param core - the server core
 * @param driver - how the adapter's sockets are worked
 * @returns the host; throws if another driver serves the server already
 */
export function serveCore<S>(core: ServerCore, driver: SocketDriver<S>): AdapterHost<S> {
  if (core.driver && core.driver !== driver) {
    throw new ChatterError("INTERNAL", "this server is already served by another runtime adapter; make one server per adapter");
  }
  core.driver = driver as SocketDriver<unknown>;
  core.adapterHost ??= {
    maxMessageBytes: Math.max(core.maxMessageBytes, HELLO_BYTES),
    maxBufferedBytes: core.limits.maxBufferedBytes,
    idleTimeout: core.limits.idleTimeout,
    admit: (request, ip) => admitSocket(core, request, ip),
    open: (state, socket) => openSocket(core, state, socket),
    message: (state, message) => receive(core, state, message),
    closed: (state, code, reason) => core.closed(state, code, reason),
    drained: (state) => core.drained(state),
    report: (err) => core.report(err),
  };
  return core.adapterHost as AdapterHost<S>;
}
