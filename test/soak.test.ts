/**
 * The short soak (issue 11): bench/soak.ts's driver with small numbers, inside
 * `npm test`. 80 clients in 2 processes do messy load for 18 s through proxies
 * that cut a fifth of the connections every 2 s, while a few leave and arrive
 * each second. Every call must settle as its kind expects, the server heap must
 * stay flat under load (under 15% growth after warm-up) and come back near its
 * baseline once every client has left. `npm run soak` is the 5-minute version.
 */
import { expect, test } from "bun:test";
import { runSoak } from "../bench/soak.ts";

test("soak: 80 clients, 18 s of messy load and cuts; every call settles as expected and the heap comes back", async () => {
  const { summary, failures } = await runSoak({ seconds: 18, clients: 80, procs: 2 });
  console.log(JSON.stringify(summary));
  expect(failures).toEqual([]);
}, 60_000);
