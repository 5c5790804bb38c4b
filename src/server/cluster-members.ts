/**
 * `server.members(topic)` across a cluster: the question goes to every
 * instance on the bus, each answers with its own subscribers, and the answer
 * is complete only when every instance that got the question has answered.
 */
import { unref } from "../engine/timers.ts";
import { ChatterError } from "../errors.ts";
import type { ClusterMember } from "./cluster.ts";

/** An instance's answer, on the asker's own channel. */
export type MembersMessage = { k: "members"; id: number; list: ClusterMember[] };

/** How long `members` waits for every instance to answer. */
export const MEMBERS_TIMEOUT_MS = 5000;

interface Query {
  topic: string;
  list: ClusterMember[];
  answers: number;
  /** How many instances got the question: unknown until the publish returns. */
  expected: number;
  resolve: (list: ClusterMember[]) => void;
  reject: (err: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class MemberQueries {
  private readonly queries = new Map<number, Query>();
  private nextId = 1;

  /** @param ask - sends the question to every instance; resolves to how many got it */
  constructor(private readonly ask: (id: number, topic: string) => Promise<number>) {}

  /**
   * @returns every connection subscribed to the topic on any instance; rejects with `TIMEOUT` if some
   *   instance does not answer within 5 s, `DISCONNECTED` if the backend cannot be reached
   */
  members(topic: string): Promise<ClusterMember[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.timedOut(id), MEMBERS_TIMEOUT_MS);
      unref(timer);
      const q: Query = { topic, list: [], answers: 0, expected: Infinity, resolve, reject, timer };
      this.queries.set(id, q);
      this.ask(id, topic).then(
        (receivers) => {
          q.expected = receivers;
          this.complete(id, q);
        },
        (err: Error) =>
          this.end(id, new ChatterError("DISCONNECTED", `members of "${topic}": the cluster backend is unreachable (${err.message})`)),
      );
    });
  }

  /** One instance's answer. */
  answer(m: MembersMessage): void {
    const q = this.queries.get(m.id);
    if (!q) return; // Late: the query timed out.
    q.list.push(...m.list);
    q.answers++;
    this.complete(m.id, q);
  }

  /** Fails every open query (the instance leaves the cluster). */
  close(): void {
    for (const id of [...this.queries.keys()]) this.end(id, new ChatterError("DISCONNECTED", "members: the cluster is closed"));
  }

  private complete(id: number, q: Query): void {
    if (q.answers < q.expected || !this.queries.has(id)) return;
    clearTimeout(q.timer);
    this.queries.delete(id);
    q.resolve(q.list);
  }

  private timedOut(id: number): void {
    const q = this.queries.get(id);
    if (!q) return;
    const heard = `${q.answers} of ${q.expected} instance(s) answered within ${MEMBERS_TIMEOUT_MS} ms`;
    this.end(id, new ChatterError("TIMEOUT", `members of "${q.topic}": ${heard}`));
  }

  private end(id: number, err: ChatterError): void {
    const q = this.queries.get(id);
    if (!q) return;
    clearTimeout(q.timer);
    this.queries.delete(id);
    q.reject(err);
  }
}
