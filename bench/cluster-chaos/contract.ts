/**
 * What the chaos scenario (scenario.ts) asks of a system under test and of its
 * instances: the `System` a driver implements, the options of a run, and the
 * records an instance writes.
 */

export interface BroadcastEvent {
  origin: number;
  n: number;
}

/** What a client does with what reaches it; the system wires these to its own events. */
export interface ClientHooks {
  onEvent(event: BroadcastEvent): void;
  /** A server-to-client call; resolves to the answer. */
  onServerCall(key: string): Promise<string>;
  /** The client reconnected but its session was not resumed. */
  onReset(): void;
}

export interface ClientHandle {
  /** A client-to-server call; rejects with an error `codeOf` can name. */
  call(key: string, slowMs: number, timeoutMs: number): Promise<string>;
  close(): void;
}

/** The code `System.codeOf` gives a call failed because the instance holding the caller's session died with it. */
export const HOME_DIED = "DISCONNECTED (its instance died)";

export interface System {
  name: string;
  /** argv of one instance process; it follows the contract of `runInstance`. */
  instanceCommand(): Promise<string[]>;
  /** Connects a client and subscribes it; resolves once the first subscription is done. */
  connect(url: string, hooks: ClientHooks): Promise<ClientHandle>;
  /** The error code of a failed call (`TIMEOUT`, `DISCONNECTED`, ...). */
  codeOf(error: unknown): string;
}

export interface ScenarioOptions {
  seconds: number;
  instances: number;
  clients: number;
  /** Each instance broadcasts every this many ms. */
  broadcastMs: number;
  /** Calls each client keeps going at once. */
  clientCallsInFlight: number;
  /** Each instance starts a call to one of its clients every this many ms, with at most `serverCallsInFlight` at once. */
  serverCallMs: number;
  serverCallsInFlight: number;
  cutMs: [number, number];
  /** Fraction of the run at which Redis is shut down and started again; none if undefined. */
  restartRedisAt?: number;
  /** Fraction of the run at which instance 0 gets SIGKILL; none if undefined. */
  killInstanceAt?: number;
  /** Every `slowEvery`th client call makes its handler take `slowMs`; the others take 0-20 ms. */
  slowEvery: number;
  slowMs: number;
  /** Each client's pause between two calls of one lane, ms, as [min, max]. */
  callGapMs: [number, number];
  callTimeoutMs: number;
  /** Bound on waiting for everything to settle after the chaos stops. */
  settleMs: number;
  /** Route every connection to this instance (checks the harness without hopping). */
  pin?: number;
  /** Keep the run's folder (results files, instance logs, Redis AOF) and log where it is. */
  keep?: boolean;
  log?: (line: string) => void;
}

export const DEFAULTS: ScenarioOptions = {
  seconds: 15,
  instances: 3,
  clients: 6,
  broadcastMs: 20,
  clientCallsInFlight: 3,
  serverCallMs: 25,
  serverCallsInFlight: 3,
  cutMs: [100, 500],
  restartRedisAt: 0.5,
  slowEvery: 5,
  slowMs: 300,
  callGapMs: [10, 40],
  callTimeoutMs: 5000,
  settleMs: 7000,
};

/** The answer both ends give for `key`, so a caller can tell its own result from another's. */
export const answerFor = (key: string) => `done:${key}`;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One line of an instance's results file. */
export type InstanceRecord =
  | { t: "ran" | "answered"; key: string }
  | { t: "issued" | "sent"; n: number }
  | { t: "scall"; key: string }
  | { t: "sdone"; key: string; result?: string; code?: string }
  | { t: "stats"; stats: Record<string, number> };

/** What an instance does with its server, for `runInstance`. */
export interface InstanceDriver<Target> {
  port: number;
  broadcast(event: BroadcastEvent): unknown;
  /** The connections this instance serves right now. */
  targets(): Target[];
  callClient(target: Target, key: string, timeoutMs: number): Promise<string>;
  codeOf(error: unknown): string;
  /** The system's own counters, recorded when the instance stops (Chatter: the cluster's stats). */
  stats?(): Record<string, number>;
}

/** The instance side of the contract: env in, a results file out, "go"/"stop" on stdin, "READY <port>"/"DONE" on stdout. */
