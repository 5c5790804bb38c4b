/** Chatter's client for the stream row: `client.stream` read with for await, at the default credit. */
import { TOKENS } from "../../procs.ts";
import { connect as connectChatter } from "./client.ts";

export async function connect(port: number) {
  const { client } = await connectChatter(port);
  return {
    /** @returns the number of items read, once the stream has ended */
    async stream(n: number): Promise<number> {
      let count = 0;
      for await (const item of client.stream(TOKENS, { n })) {
        if (item.i !== count++) throw new Error(`chatter stream: item ${item.i} arrived at ${count - 1}`);
      }
      return count;
    },
    close: () => client.close(),
  };
}
