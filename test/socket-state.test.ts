/**
 * A socket's state packs its frame clock and count into one number and its two flags into another (#16):
 * each must still read back as the separate field it stands for.
 */
import { expect, test } from "bun:test";
import { SocketState } from "../src/server/socket-state.ts";

test("window and frames are set and read independently; the count stops short of spilling into the clock", () => {
  const state = new SocketState("c", undefined, "10.0.0.1");
  expect([state.window, state.frames]).toEqual([0, 0]);
  state.frames = 7;
  state.window = 123_456_789; // Years of a server's seconds.
  expect([state.window, state.frames]).toEqual([123_456_789, 7]);
  state.frames += 1;
  expect([state.window, state.frames]).toEqual([123_456_789, 8]);
  state.frames = 10 ** 9;
  expect(state.window).toBe(123_456_789);
  expect(state.frames).toBe(2 ** 21 - 1);
  state.window = 5;
  expect([state.window, state.frames]).toEqual([5, 2 ** 21 - 1]);
  state.frames = 0;
  expect([state.window, state.frames]).toEqual([5, 0]);
});

test("closing and counted are separate flags", () => {
  const state = new SocketState("c", undefined);
  expect([state.closing, state.counted]).toEqual([false, false]);
  state.counted = true;
  expect([state.closing, state.counted]).toEqual([false, true]);
  state.closing = true;
  expect([state.closing, state.counted]).toEqual([true, true]);
  state.counted = false;
  expect([state.closing, state.counted]).toEqual([true, false]);
  state.closing = false;
  expect([state.closing, state.counted]).toEqual([false, false]);
});

test("countFrames adds up within a second, starts again in the next, and stops short of the clock", () => {
  const state = new SocketState("c", undefined);
  state.window = 40;
  expect(state.countFrames(40, 3)).toBe(3);
  expect(state.countFrames(40, 2)).toBe(5);
  expect([state.window, state.frames]).toEqual([40, 5]);
  expect(state.countFrames(41, 1)).toBe(1);
  expect([state.window, state.frames]).toEqual([41, 1]);
  expect(state.countFrames(41, 10 ** 9)).toBe(2 ** 21 - 1);
  expect(state.window).toBe(41);
});
