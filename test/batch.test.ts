/** The client's batching transport (src/client/transport.ts) over a socket that records what it is given. */
import { expect, test } from "bun:test";
import { batchingTransport, MAX_BATCH_FRAMES } from "../src/client/transport.ts";
import { decodeFrames, encodeFrame, FrameType, MAX_FRAMES_PER_MESSAGE } from "../src/wire/frames.ts";
import { MAX_VALUES } from "../src/wire/guard.ts";

function recordingSocket() {
  const messages: number[][] = [];
  const ws = {
    readyState: 1,
    send(data: Uint8Array) {
      // Decoded as the server does, with its cap on frames per message.
      messages.push(decodeFrames(data, MAX_FRAMES_PER_MESSAGE).map((frame) => frame[1] as number));
    },
  };
  return { ws: ws as unknown as WebSocket, messages };
}

const cancel = (id: number) => encodeFrame([FrameType.Cancel, id]);
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

test("the first frame of a tick goes out at once; the rest of the tick follow as one message", async () => {
  const { ws, messages } = recordingSocket();
  const link = batchingTransport(ws, 1 << 20);
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
  const link = batchingTransport(ws, size * 3);
  for (let id = 1; id <= 8; id++) link.send(cancel(id));
  await tick();
  expect(messages).toEqual([[1], [2, 3, 4], [5, 6, 7], [8]]);
});

test("a burst of tiny frames is split at 256 frames a message, well under the server's cap", async () => {
  expect(MAX_BATCH_FRAMES).toBe(256);
  expect(MAX_BATCH_FRAMES).toBeLessThan(MAX_FRAMES_PER_MESSAGE);
  const { ws, messages } = recordingSocket();
  const link = batchingTransport(ws, 1 << 20); // 3000 CANCELs are 9 KB: bytes alone would never split them
  for (let id = 1; id <= 3000; id++) link.send(cancel(id));
  await tick();
  expect(messages.map((m) => m.length)).toEqual([1, ...new Array(11).fill(256), 183]);
  expect(messages.flat()).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
});

test("frames for a socket that closed meanwhile are dropped, not thrown", async () => {
  const { ws, messages } = recordingSocket();
  const link = batchingTransport(ws, 1 << 20);
  link.send(cancel(1));
  link.send(cancel(2));
  (ws as unknown as { readyState: number }).readyState = 3;
  await tick();
  expect(messages).toEqual([[1]]);
});

test("a batch stays within the values a message may hold: many mid-sized frames go out in several messages", async () => {
  const sent: Uint8Array[] = [];
  const ws = { readyState: 1, send: (data: Uint8Array) => void sent.push(data) } as unknown as WebSocket;
  const link = batchingTransport(ws, 1024 * 1024);
  const frame = new Uint8Array(40_000);
  for (let i = 0; i < 10; i++) link.send(frame);
  await tick();
  expect(sent.reduce((n, m) => n + m.byteLength, 0)).toBe(400_000);
  expect(sent.length).toBeGreaterThan(3);
  for (const m of sent) expect(m.byteLength).toBeLessThanOrEqual(MAX_VALUES);
});
