// The chat's procedures, imported by both the server and the page.
import { createProc } from "chatter";
import { z } from "zod";

const Room = z.string().regex(/^[a-z0-9-]{1,24}$/, "a room name is 1 to 24 of a-z, 0-9 and -");
const Message = z.object({ room: Room, from: z.string(), text: z.string(), at: z.date() });
const Person = z.object({ name: z.string(), state: z.enum(["online", "away"]) });
export type Message = z.infer<typeof Message>;
export type Person = z.infer<typeof Person>;

// The page calls these; the server implements them.

/** Enters a room (leaving the one before): returns who you are and the room's recent messages. */
export const JOIN = createProc({
  name: "join",
  takes: Room,
  returns: z.object({ you: z.string(), messages: z.array(Message) }),
});

/** Says something in a room you joined. */
export const POST = createProc({
  name: "post",
  takes: z.object({ room: Room, text: z.string().trim().min(1).max(500) }),
});

/** "I am typing in this room": sent now and then while the text box changes. */
export const TYPING = createProc({ name: "typing", takes: Room });

// The server calls these on every page in a room; the page implements them.

/** A new message in the room. */
export const MESSAGE = createProc({ name: "message", takes: Message });

/** Who is in the room now, and whether each is online or away (their socket dropped; they may come back). */
export const PRESENCE = createProc({ name: "presence", takes: z.object({ room: Room, people: z.array(Person) }) });

/** Someone in the room is typing. */
export const SOMEONE_TYPING = createProc({ name: "someone_typing", takes: z.object({ room: Room, name: z.string() }) });
