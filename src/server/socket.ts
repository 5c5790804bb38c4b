/**
 * The contract between the server core and a runtime adapter. An adapter
 * turns its runtime's WebSocket into a `ServerSocket` (Bun's already is one)
 * and, where the runtime has native pub/sub, offers a `Publisher`.
 */

/** One accepted WebSocket, as the server core sees it. */
export interface ServerSocket {
  /** Sends one binary frame. */
  send(frame: Uint8Array): unknown;
  /** Closes with a WebSocket close code and a short reason. */
  close(code?: number, reason?: string): void;
  /** Joins a native pub/sub topic; a no-op on runtimes without one. */
  subscribe(topic: string): void;
  /** Leaves a native pub/sub topic. */
  unsubscribe(topic: string): void;
}

/** Native fan-out: sends one frame to every socket subscribed to a topic. */
export interface Publisher {
  publish(topic: string, frame: Uint8Array): unknown;
}

/** What the upgrade learned about a client, kept until its socket opens. */
export interface Admission {
  /** The client's id from the upgrade URL (`cid`); not a secret. */
  clientId: string;
  /** What `getConnectionData` returned. */
  data: unknown;
}
