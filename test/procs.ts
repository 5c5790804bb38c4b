import * as v from "valibot";
import { z } from "zod";
import { createProc } from "../src/index.ts";

export const ADD = createProc({ name: "add", takes: z.object({ a: z.number(), b: z.number() }), returns: z.number() });
export const ECHO = createProc({ name: "echo", takes: z.unknown(), returns: z.unknown() });
export const NOTE = createProc({ name: "note", takes: z.string() });
export const GREET = createProc({ name: "greet", takes: v.object({ name: v.string() }), returns: v.string() });
export const NOTHING = createProc({ name: "nothing" });
export const SLOW = createProc({ name: "slow", takes: z.number(), returns: z.string(), timeout: 2000 });
export const WHOAMI = createProc({ name: "whoami", returns: z.unknown() });
export const ECHO_TEXT = createProc({ name: "echo_text", takes: z.string(), returns: z.string() });
