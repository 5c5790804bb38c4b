/**
 * Keepalive pings. A socket can die without a close event (a laptop sleeps, a NAT forgets the flow), so the
 * client pings every so often, and a ping still unanswered when the next one is due means the connection is
 * dead. The PING also carries the client's settled watermark, so the server can drop answers it keeps.
 */
import { unref } from "../engine/timers.ts";

export class Keepalive {
  #timer: ReturnType<typeof setInterval> | undefined;
  #awaiting = false;
  readonly #send: () => void;
  readonly #dead: (every: number) => void;

  /**
   * @param send - sends a PING on the current socket
   * @param dead - called when a ping went unanswered for a whole interval, with that interval in ms
   */
  constructor(send: () => void, dead: (every: number) => void) {
    this.#send = send;
    this.#dead = dead;
  }

  /** Whether a ping waits for its pong. */
  get awaiting(): boolean {
    return this.#awaiting;
  }

  /** (Re)starts pinging every `every` ms, on a timer that never keeps the process alive. */
  start(every: number): void {
    clearInterval(this.#timer);
    this.#awaiting = false;
    this.#timer = setInterval(() => {
      if (this.#awaiting) return this.#dead(every);
      this.ping();
    }, every);
    unref(this.#timer);
  }

  /** Pings now: the next tick of the timer finds the connection dead unless a PONG comes first. */
  ping(): void {
    this.#awaiting = true;
    this.#send();
  }

  /** The server answered. */
  pong(): void {
    this.#awaiting = false;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
