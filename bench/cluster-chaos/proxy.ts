/**
 * The load balancer of the chaos runs: a TCP proxy on 127.0.0.1 that sends
 * each new connection to a random live instance (or always to one, when
 * pinned), and a cutter that kills every connection through it at random
 * intervals. test/proxy.ts cuts but has one target for all; here each
 * connection picks its own, which is the point of the scenario.
 */
import type { Socket } from "bun";
import { pump, type Side } from "../../test/proxy.ts";

export interface ChaosProxy {
  url: string;
  /** Times `cutAll` found connections to cut. */
  readonly cuts: number;
  /** Connections opened through the proxy, per target index. */
  readonly routed: number[];
  /** Kills every connection, both ends, with no goodbye. */
  cutAll(): void;
  /** Stops routing new connections to the instance at `index`, as a health check would after it died. */
  drop(index: number): void;
  /** Starts cutting everything every `minMs`..`maxMs` (uniform), until `stop`. */
  startCutting(minMs: number, maxMs: number): void;
  /** Stops cutting; connections stay up. */
  calm(): void;
  stop(): void;
}

/**
 * @param targets the instances' ports
 * @param pin when a number, every new connection goes to that index (no hopping)
 * @returns a running proxy
 */
export function chaosProxy(targets: number[], pin?: number): ChaosProxy {
  const live = new Set<Socket<Side>>();
  const up = targets.map(() => true);
  const routed = targets.map(() => 0);
  let cuts = 0;
  let cutter: ReturnType<typeof setTimeout> | undefined;
  const kill = (s: Socket<Side> | null) => {
    if (!s) return;
    live.delete(s);
    s.terminate();
  };
  const pick = (): number => {
    if (pin !== undefined) return pin;
    const open = up.flatMap((ok, i) => (ok ? [i] : []));
    return open[Math.floor(Math.random() * open.length)] ?? 0;
  };
  const listener = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        client.data = { peer: null, backlog: [] };
        live.add(client);
        const index = pick();
        routed[index] = (routed[index] ?? 0) + 1;
        Bun.connect<Side>({
          hostname: "127.0.0.1",
          port: targets[index] as number,
          socket: {
            open(server) {
              server.data = { peer: client, backlog: [] };
              live.add(server);
              client.data.peer = server;
              pump(server, client.data.backlog);
            },
            data: (server, chunk) => pump(server.data.peer, server.data.backlog, chunk),
            drain: (server) => pump(server, client.data.backlog),
            close: (server) => kill(server.data.peer),
            error: (server) => kill(server.data.peer),
          },
        }).catch(() => kill(client));
      },
      data: (client, chunk) => pump(client.data.peer, client.data.backlog, chunk),
      drain: (client) => pump(client, client.data.peer?.data.backlog ?? []),
      close: (client) => kill(client.data.peer),
      error: (client) => kill(client.data.peer),
    },
  });
  const proxy: ChaosProxy = {
    url: `ws://127.0.0.1:${listener.port}`,
    get cuts() {
      return cuts;
    },
    get routed() {
      return [...routed];
    },
    cutAll() {
      if (live.size) cuts++;
      for (const s of [...live]) kill(s);
    },
    drop(index) {
      up[index] = false;
    },
    startCutting(minMs, maxMs) {
      const next = () => {
        cutter = setTimeout(
          () => {
            proxy.cutAll();
            next();
          },
          minMs + Math.random() * (maxMs - minMs),
        );
      };
      next();
    },
    calm() {
      clearTimeout(cutter);
      cutter = undefined;
    },
    stop() {
      proxy.calm();
      proxy.cutAll();
      listener.stop(true);
    },
  };
  return proxy;
}
