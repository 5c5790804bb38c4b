/**
 * The frame types: the first element of every frame (PROTOCOL.md has a heading per frame). One constant
 * each, imported as a namespace (`import * as FrameType from "./frame-type.ts"`), not an object: a bundler
 * then writes the number itself where a frame is made or matched, and ships no table of names (a browser
 * client is smaller for it). frames.ts passes the namespace on as `FrameType`.
 */

export const Hello = 1;
export const Welcome = 2;
export const Call = 3;
export const Result = 4;
/** ERROR: named apart from the global `Error` in this file, and exported as `Error` at its end. */
const ErrorFrame = 5;
export const Event = 6;
export const Cancel = 7;
export const Ping = 8;
export const Pong = 9;
export const Refused = 10;
export const Item = 11;
export const Credit = 12;

export { ErrorFrame as Error };
