// src/procedures.ts of the seed's live counter example, unchanged apart from the import path.
import { createProc } from "chatter";
import { z } from "zod";

export const GET_COUNT = createProc({
  name: "get_count",
  returns: z.number(), // what the function returns
  // this proc doesn't take anything, so there is no 'takes' schema.
});

export const UPDATE_COUNT = createProc({
  name: "update_count",
  takes: z.number(),
  returns: z.number(),
});
