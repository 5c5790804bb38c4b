/**
 * Where a public `ChatterServer` keeps its core: in this module, not on the
 * object, so nothing public reaches it. Adapters get their host here.
 */
import type { AdapterHost, SocketDriver } from "./adapter.ts";
import type { ServerCore } from "./core.ts";
import { serveCore } from "./host.ts";

const cores = new WeakMap<object, ServerCore>();

/** Called once by each new `ChatterServer`. */
export function register(server: object, core: ServerCore): void {
  cores.set(server, core);
}

/** @returns the core behind a server from `createServer` */
export function coreOf(server: object): ServerCore {
  const core = cores.get(server);
  if (!core) throw new TypeError("[chatter] expected a server from createServer()");
  return core;
}

/**
 * Connects a runtime adapter to a server. A server is served through one driver; another throws.
 * @param server - the server from `createServer`
 * @param driver - how the core works the runtime's sockets
 * @returns the host the adapter reports its sockets' events to
 */
export function hostFor<S>(server: object, driver: SocketDriver<S>): AdapterHost<S> {
  return serveCore(coreOf(server), driver);
}
