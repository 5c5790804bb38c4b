import type { StandardSchemaV1 } from "@standard-schema/spec";

/**
 * The stable error codes a {@link ChatterError} can carry. Codes cross the
 * wire unchanged, so both ends can switch on them.
 */
export type ErrorCode =
  | "VALIDATION"
  | "NOT_IMPLEMENTED"
  | "TIMEOUT"
  | "ABORTED"
  | "DISCONNECTED"
  | "HANDLER_ERROR"
  | "PROTOCOL"
  | "LIMIT"
  | "NOT_FOUND";

/** One validation problem, with the path of the value it concerns. */
export interface ErrorIssue {
  message: string;
  path: PropertyKey[];
}

/** The shape an error takes on the wire: plain data, never an `Error` object. */
export interface WireError {
  code: string;
  message: string;
  issues?: ErrorIssue[];
  stack?: string;
}

/**
 * The error every failed call rejects with. `code` is stable and is the thing
 * to branch on; `message` is for people.
 */
export class ChatterError extends Error {
  /** A stable code such as `VALIDATION` or `TIMEOUT` (or your own, if a handler threw one). */
  readonly code: ErrorCode | (string & {});
  /** For `VALIDATION`: each failed check and the path of the value it concerns. */
  readonly issues?: ErrorIssue[];
  /** The remote stack, present only when the other end is set to expose stacks. */
  readonly remoteStack?: string;

  /**
   * @param code - a stable code, one of {@link ErrorCode} or an app-defined one
   * @param message - a readable description that names the thing involved
   * @param issues - validation issues, for `VALIDATION`
   */
  constructor(code: ErrorCode | (string & {}), message: string, issues?: ErrorIssue[]) {
    super(`[chatter] ${message}`);
    this.name = "ChatterError";
    this.code = code;
    if (issues) this.issues = issues;
  }

  /** @returns the plain-data form sent over the wire. */
  toWire(withStack = false): WireError {
    const out: WireError = { code: this.code, message: this.message.replace(/^\[chatter\] /, "") };
    if (this.issues) out.issues = this.issues;
    if (withStack && this.stack) out.stack = this.stack;
    return out;
  }
}

/**
 * Turns whatever a handler threw into wire form. A thrown `ChatterError`
 * keeps its code; anything else becomes `HANDLER_ERROR` with its message.
 * @returns the error as plain data
 */
export function toWireError(err: unknown, proc: string, withStack: boolean): WireError {
  if (err instanceof ChatterError) return err.toWire(withStack);
  const message = err instanceof Error ? err.message : String(err);
  const out: WireError = { code: "HANDLER_ERROR", message: `handler for "${proc}" failed: ${message}` };
  if (withStack && err instanceof Error && err.stack) out.stack = err.stack;
  return out;
}

/**
 * Rebuilds a real error from wire data, defensively: the other end may be
 * buggy or hostile, so every field is checked.
 * @returns a `ChatterError` with the same code
 */
export function fromWireError(raw: unknown): ChatterError {
  if (typeof raw !== "object" || raw === null) {
    return new ChatterError("PROTOCOL", "received a malformed error frame");
  }
  const { code, message, issues, stack } = raw as Record<string, unknown>;
  const err = new ChatterError(
    typeof code === "string" ? code : "HANDLER_ERROR",
    typeof message === "string" ? message : "unknown remote error",
    Array.isArray(issues) ? issues.map(readIssue) : undefined,
  );
  if (typeof stack === "string") (err as { remoteStack?: string }).remoteStack = stack;
  return err;
}

function readIssue(raw: unknown): ErrorIssue {
  const r = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  return {
    message: typeof r.message === "string" ? r.message : "invalid",
    path: Array.isArray(r.path) ? r.path.filter(isKey) : [],
  };
}

function isKey(v: unknown): v is PropertyKey {
  return typeof v === "string" || typeof v === "number";
}

/**
 * Flattens Standard Schema issues so they survive the codec: path segments
 * may be `{ key }` objects or symbols, which we reduce to strings and numbers.
 * @returns issues with plain paths
 */
export function plainIssues(issues: ReadonlyArray<StandardSchemaV1.Issue>): ErrorIssue[] {
  return issues.map((issue) => ({
    message: issue.message,
    path: (issue.path ?? []).map((seg) => {
      const key = typeof seg === "object" && seg !== null ? seg.key : seg;
      return typeof key === "symbol" ? key.toString() : key;
    }),
  }));
}

/** @returns the issues as one readable line, e.g. `a.b: Expected number` */
export function describeIssues(issues: ErrorIssue[]): string {
  return issues.map((i) => (i.path.length ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; ");
}
