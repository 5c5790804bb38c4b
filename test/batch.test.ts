/** The client's batching link (src/client/batch.ts) over a socket that records what it is given. */
import { expect, test } from "bun:test";
import { batchingLink } from "../src/client/batch.ts";
import { decodeFrames, encodeFrame, FrameType } from "../src/wire/frames.ts";

function recordingSocket() {
  const messages: number[][] = [];
  const ws = {
    readyState: 1,
    send(data: Uint8Array) {
      messages.push(decodeFrames(data).map((frame) => frame[1] as number));
    },
  };
  return { ws: ws as unknown as WebSocket, messages };
}

const cancel = (id: number) => encodeFrame([FrameType.Cancel, id]);
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

test("the first frame of a tick goes out at once; the rest of the tick follow as one message", async () => {
  const { ws, messages } = recordingSocket();
  const link = batchingLink(ws, 1 << 20);
  link.send(cancel(1));
  expect(messages).toEqual([[1]]); // before the tick ends
  link.send(cancel(2));
  link.send(cancel(3));
  expect(messages).toEqual([[1]]);
  await tick();
  expect(messages).toEqual([[1], [2, 3]]);
  link.send(cancel(4)); // a new tick
  expect(messages).toEqual([[1], [2, 3], [4]]);
  await tick();
  expect(messages).toEqual([[1], [2, 3], [4]]);
});

test("a batch never grows past maxBytes, and frames keep their order", async () => {
  const { ws, messages } = recordingSocket();
  const size = cancel(1).byteLength;
  const link = batchingLink(ws, size * 3);
  for (let id = 1; id <= 8; id++) link.send(cancel(id));
  await tick();
  expect(messages).toEqual([[1], [2, 3, 4], [5, 6, 7], [8]]);
});

test("frames for a socket that closed meanwhile are dropped, not thrown", async () => {
  const { ws, messages } = recordingSocket();
  const link = batchingLink(ws, 1 << 20);
  link.send(cancel(1));
  link.send(cancel(2));
  (ws as unknown as { readyState: number }).readyState = 3;
  await tick();
  expect(messages).toEqual([[1]]);
});
