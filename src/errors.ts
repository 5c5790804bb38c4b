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
  | "NOT_FOUND"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "RATE_LIMITED"
  | "UNAVAILABLE";

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
  /** Issues left out because there were more than {@link MAX_ISSUES}. */
  omittedIssues?: number;
  stack?: string;
}

/** Issues an error carries at most; the rest are counted in `omittedIssues`. */
export const MAX_ISSUES = 100;
/** Characters an error message keeps at most; longer ones are cut. */
const MAX_MESSAGE = 1024;
/** Characters an issue message keeps, and path segments an issue path keeps. */
const MAX_ISSUE_MESSAGE = 256;
const MAX_PATH = 32;
const MAX_KEY = 128;
/** Issues spelled out in an error's message; the rest are counted there. */
const ISSUES_IN_MESSAGE = 5;

/** @returns the text cut to `max` characters, marked when it was cut */
function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/**
 * The error every failed call rejects with. `code` is stable and is the thing
 * to branch on; `message` is for people. The message is kept exactly as
 * written, so an app's own error arrives as the app wrote it; the error's
 * `name`, `ChatterError`, is what marks it as Chatter's in logs and stacks.
 */
export class ChatterError extends Error {
  /** A stable code such as `VALIDATION` or `TIMEOUT` (or your own, if a handler threw one). */
  readonly code: ErrorCode | (string & {});
  /** For `VALIDATION`: each failed check and the path of the value it concerns. */
  declare readonly issues?: ErrorIssue[];
  /** Issues left out of `issues` because there were more than 100. */
  declare readonly omittedIssues?: number;
  /** The remote stack, present only when the other end is set to expose stacks. */
  declare readonly remoteStack?: string;
  /** For a refused connection (`RATE_LIMITED`, `UNAVAILABLE`): milliseconds to wait before trying again. */
  declare readonly retryAfter?: number;

  /**
   * @param code - a stable code, one of {@link ErrorCode} or an app-defined one
   * @param message - a readable description that names the thing involved
   * @param issues - validation issues, for `VALIDATION`
   * @param omittedIssues - how many further issues were left out
   */
  constructor(code: ErrorCode | (string & {}), message: string, issues?: ErrorIssue[], omittedIssues?: number) {
    super(message);
    this.name = "ChatterError";
    this.code = code;
    if (issues) this.issues = issues;
    if (omittedIssues) this.omittedIssues = omittedIssues;
  }

  /** @returns the plain-data form sent over the wire, bounded in size whatever the error holds. */
  toWire(withStack = false): WireError {
    const out: WireError = { code: cut(String(this.code), 64), message: cut(this.message, MAX_MESSAGE) };
    if (this.issues) {
      const issues = this.issues.slice(0, MAX_ISSUES).map(boundIssue);
      out.issues = issues;
      const omitted = (this.omittedIssues ?? 0) + this.issues.length - issues.length;
      if (omitted > 0) out.omittedIssues = omitted;
    }
    if (withStack && typeof this.stack === "string") out.stack = cut(this.stack, 8 * MAX_MESSAGE);
    return out;
  }
}

function boundIssue(issue: ErrorIssue): ErrorIssue {
  return {
    message: cut(typeof issue.message === "string" ? issue.message : "invalid", MAX_ISSUE_MESSAGE),
    path: issue.path.slice(0, MAX_PATH).map((k) => (typeof k === "string" ? cut(k, MAX_KEY) : k)),
  };
}

/**
 * Describes whatever was thrown without trusting it: a thrown value may be
 * a null-prototype object, a Proxy, or an object whose `message` or
 * `toString` throws.
 * @returns a readable, bounded description
 */
export function describeThrown(err: unknown): string {
  try {
    if (err instanceof Error) return typeof err.message === "string" ? err.message : `a ${err.name} without a message`;
    if (typeof err === "string") return err;
    if (typeof err === "object" && err !== null) {
      const text = String(err);
      return text === "[object Object]" ? "a thrown object that is not an Error" : text;
    }
    return String(err);
  } catch {
    return `a thrown ${err === null ? "null" : typeof err} that cannot be turned into text`;
  }
}

/**
 * Turns whatever a handler threw into wire form. A thrown `ChatterError`
 * keeps its code; anything else becomes `HANDLER_ERROR` with its message.
 * @returns the error as plain data
 */
export function toWireError(err: unknown, proc: string, withStack: boolean): WireError {
  try {
    if (err instanceof ChatterError) return err.toWire(withStack);
  } catch {
    // A subclass with hostile getters: fall through to the generic form.
  }
  const out: WireError = { code: "HANDLER_ERROR", message: cut(`handler for "${proc}" failed: ${describeThrown(err)}`, MAX_MESSAGE) };
  try {
    if (withStack && err instanceof Error && typeof err.stack === "string") out.stack = cut(err.stack, 8 * MAX_MESSAGE);
  } catch {
    // No stack, then.
  }
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
  const { code, message, issues, omittedIssues, stack } = raw as Record<string, unknown>;
  const list = Array.isArray(issues) ? issues.slice(0, MAX_ISSUES).map(readIssue) : undefined;
  const omitted =
    (typeof omittedIssues === "number" && omittedIssues > 0 ? omittedIssues : 0) + (list ? (issues as unknown[]).length - list.length : 0);
  const err = new ChatterError(
    typeof code === "string" ? cut(code, 64) : "HANDLER_ERROR",
    typeof message === "string" ? cut(message, MAX_MESSAGE) : "unknown remote error",
    list,
    omitted || undefined,
  );
  if (typeof stack === "string") (err as { remoteStack?: string }).remoteStack = cut(stack, 8 * MAX_MESSAGE);
  return err;
}

function readIssue(raw: unknown): ErrorIssue {
  const r = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  return boundIssue({
    message: typeof r.message === "string" ? r.message : "invalid",
    path: Array.isArray(r.path) ? r.path.slice(0, MAX_PATH).filter(isKey) : [],
  });
}

function isKey(v: unknown): v is PropertyKey {
  return typeof v === "string" || typeof v === "number";
}

/**
 * Flattens Standard Schema issues so they survive the codec: path segments
 * may be `{ key }` objects or symbols, which we reduce to strings and numbers.
 * Only the first {@link MAX_ISSUES} are kept: one bad input can yield an
 * issue per element, and the answer must not grow with it.
 * @returns issues with plain, bounded paths
 */
export function plainIssues(issues: ReadonlyArray<StandardSchemaV1.Issue>): ErrorIssue[] {
  const out: ErrorIssue[] = [];
  for (let i = 0; i < issues.length && i < MAX_ISSUES; i++) {
    const issue = issues[i] as StandardSchemaV1.Issue;
    const path = (issue.path ?? []).slice(0, MAX_PATH).map((seg) => {
      const key = typeof seg === "object" && seg !== null ? seg.key : seg;
      return typeof key === "symbol" ? key.toString() : typeof key === "string" || typeof key === "number" ? key : "?";
    });
    out.push(boundIssue({ message: String(issue.message), path }));
  }
  return out;
}

/**
 * @param issues - the issues kept
 * @param omitted - how many more there were
 * @returns the first few issues as one readable line, e.g. `a.b: Expected number; ... and 41 more issues`
 */
export function describeIssues(issues: ErrorIssue[], omitted = 0): string {
  const shown = issues.slice(0, ISSUES_IN_MESSAGE).map((i) => (i.path.length ? `${i.path.join(".")}: ${i.message}` : i.message));
  const rest = issues.length - shown.length + omitted;
  return rest > 0 ? `${shown.join("; ")}; and ${rest} more issue${rest === 1 ? "" : "s"}` : shown.join("; ");
}
