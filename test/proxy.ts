/**
 * A TCP proxy on 127.0.0.1 for breaking connections on purpose: `cutAll()`
 * kills every connection through it at once (both ends), and `refuse()`
 * makes it reject new ones, as a network that is down would. `chunks` counts
 * the reads it passed on, so a test can cut at points in the traffic.
 */
import type { Socket } from "bun";

/** One end of a proxied connection: its other end, and what waits to be written to it. */
export interface Side {
  peer: Socket<Side> | null;
  /** Bytes waiting for the other side to connect or drain. */
  backlog: Uint8Array[];
}

/** Writes what waits (and `chunk`) to `to`, keeping what a partial write leaves for its `drain`. */
export function pump(to: Socket<Side> | null, backlog: Uint8Array[], chunk?: Uint8Array): void {
  if (chunk) backlog.push(chunk);
  while (to && backlog.length) {
    const next = backlog[0] as Uint8Array;
    const written = to.write(next);
    if (written === next.byteLength) backlog.shift();
    else {
      // A partial write: keep the rest for `drain`.
      backlog[0] = next.subarray(Math.max(written, 0));
      return;
    }
  }
}

export async function tcpProxy(targetPort: number) {
  const live = new Set<Socket<Side>>();
  let refusing = false;
  let target = targetPort;
  let cuts = 0;
  let chunks = 0;
  const kill = (s: Socket<Side> | null) => {
    if (!s) return;
    live.delete(s);
    s.terminate();
  };
  const listener = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        if (refusing) return void client.terminate();
        client.data = { peer: null, backlog: [] };
        live.add(client);
        Bun.connect<Side>({
          hostname: "127.0.0.1",
          port: target,
          socket: {
            open(up) {
              up.data = { peer: client, backlog: [] };
              live.add(up);
              client.data.peer = up;
              pump(up, client.data.backlog);
            },
            data: (up, chunk) => {
              chunks++;
              pump(up.data.peer, up.data.backlog, chunk);
            },
            drain: (up) => pump(up, client.data.backlog),
            close: (up) => kill(up.data.peer),
            error: (up) => kill(up.data.peer),
          },
        }).catch(() => kill(client));
      },
      // A refused socket closes before it has data.
      data: (client, chunk) => {
        if (!client.data) return;
        chunks++;
        pump(client.data.peer, client.data.backlog, chunk);
      },
      drain: (client) => client.data && pump(client, client.data.peer?.data.backlog ?? []),
      close: (client) => kill(client.data?.peer ?? null),
      error: (client) => kill(client.data?.peer ?? null),
    },
  });
  return {
    port: listener.port,
    url: `ws://127.0.0.1:${listener.port}`,
    get cuts() {
      return cuts;
    },
    /** Reads passed on so far, both ways. */
    get chunks() {
      return chunks;
    },
    /** Kills every connection through the proxy, both ends, with no goodbye. */
    cutAll() {
      if (live.size) cuts++;
      for (const s of [...live]) kill(s);
    },
    /** Sends new connections to another port, as a load balancer moving a client would. */
    retarget(port: number) {
      target = port;
    },
    /** While true, new connections are dropped at once. */
    refuse(on: boolean) {
      refusing = on;
    },
    stop() {
      this.cutAll();
      listener.stop(true);
    },
  };
}
