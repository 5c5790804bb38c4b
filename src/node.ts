/** `chatter/node`: serve Chatter on a Node HTTP(S) server through the `ws` package. */
export { type AttachOptions, attach, type NodeAttachment } from "./server/node.ts";
