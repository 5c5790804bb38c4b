/**
 * The instance side of the chaos scenario: env in, a results file out,
 * "go"/"stop" on stdin, "READY <port>"/"DONE" on stdout. Records are written
 * synchronously, so a SIGKILLed instance's records survive it.
 */
import { openSync, writeSync } from "node:fs";
import { createInterface } from "node:readline";
import { answerFor, type InstanceDriver, type InstanceRecord, sleep } from "./contract.ts";

/** @returns what an instance process needs: its settings, the handler body, and `run` */
export function instanceKit() {
  const env = (name: string) => process.env[name] ?? "";
  const fd = openSync(env("RESULTS"), "a");
  const record = (r: InstanceRecord) => writeSync(fd, `${JSON.stringify(r)}\n`);
  const origin = Number(env("ORIGIN"));
  return {
    origin,
    redisUrl: env("REDIS_URL"),
    prefix: env("PREFIX"),
    /** The client-to-server handler's body: records that it ran, takes `slowMs`, answers. */
    async work(key: string, slowMs: number): Promise<string> {
      record({ t: "ran", key });
      await sleep(slowMs);
      record({ t: "answered", key });
      return answerFor(key);
    },
    /** Prints READY, then broadcasts and calls between "go" and "stop"; prints DONE once its calls settle. */
    run<Target>(driver: InstanceDriver<Target>): void {
      const timers: ReturnType<typeof setInterval>[] = [];
      const inFlight = new Set<Promise<unknown>>();
      let n = 0;
      let seq = 0;
      const broadcast = () => {
        n++;
        const event = { origin, n };
        record({ t: "issued", n });
        Promise.resolve(driver.broadcast(event)).then(
          () => record({ t: "sent", n: event.n }),
          (err) => console.error(`broadcast ${event.n}: ${String(err)}`),
        );
      };
      const callOne = () => {
        if (inFlight.size >= Number(env("SERVER_CALLS_IN_FLIGHT"))) return;
        const targets = driver.targets();
        const target = targets[Math.floor(Math.random() * targets.length)];
        if (target === undefined) return;
        const key = `s${origin}-${++seq}`;
        record({ t: "scall", key });
        const call = driver.callClient(target, key, Number(env("CALL_TIMEOUT_MS"))).then(
          (result) => record({ t: "sdone", key, result }),
          (err) => record({ t: "sdone", key, code: driver.codeOf(err) }),
        );
        inFlight.add(call);
        void call.finally(() => inFlight.delete(call));
      };
      createInterface({ input: process.stdin }).on("line", async (line) => {
        if (line === "go") {
          timers.push(setInterval(broadcast, Number(env("BROADCAST_MS"))), setInterval(callOne, Number(env("SERVER_CALL_MS"))));
        } else if (line === "stop") {
          for (const t of timers) clearInterval(t);
          await Promise.allSettled([...inFlight]);
          if (driver.stats) record({ t: "stats", stats: driver.stats() });
          console.log("DONE");
        }
      });
      console.log(`READY ${driver.port}`);
    },
  };
}
