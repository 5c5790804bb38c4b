// The fixture on Deno through chatter/deno. Prints "READY <port>" once it listens.
import { listenOnDeno } from "../fixtures/deno-listen.ts";
import { fixtureServer } from "./fixture.ts";

listenOnDeno(fixtureServer());
