// RPC errors as callers see them: a Connect code, a clear message, and google.rpc
// details (ErrorInfo with a stable reason; BadRequest for bad fields; RetryInfo
// when waiting helps). Internals travel in `cause`, which is logged, never sent.
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequest_FieldViolationSchema,
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "../../gen/google/rpc/error_details_pb.js";

const ERROR_DOMAIN = "agentd.dev";

/** Turns any thrown value into an Error, keeping the original as `cause`. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : JSON.stringify(value), { cause: value });
}

/** Field violations sent in one error; the rest are counted (ErrorInfo metadata `more_violations`). */
const MAX_VIOLATIONS = 20;
/** Longest echoed id, field path or description: every error stays far below gRPC's ~8–64 KB header limits. */
const MAX_ECHO = 100;
const MAX_FIELD = 200;
const MAX_DESCRIPTION = 300;
export const MAX_MESSAGE = 2000;

/** `text` cut to `max` characters (never inside a surrogate pair), marking what was cut. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…(${text.length - end} more)`;
}

export interface FieldViolation {
  field: string;
  description: string;
  reason?: string;
}

function errorInfo(reason: string, metadata: Record<string, string> = {}) {
  return { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) };
}

export function rpcError(
  code: Code,
  reason: string,
  message: string,
  opts: { metadata?: Record<string, string>; cause?: unknown } = {},
): ConnectError {
  const metadata = Object.fromEntries(Object.entries(opts.metadata ?? {}).map(([k, v]) => [k, clip(v, MAX_ECHO)]));
  return new ConnectError(clip(message, MAX_MESSAGE), code, undefined, [errorInfo(reason, metadata)], opts.cause);
}

/** INVALID_ARGUMENT with one BadRequest violation per problem: at most MAX_VIOLATIONS of them,
 * each clipped, and the number left out in the message and in ErrorInfo `more_violations`. */
export function invalidArgument(violations: FieldViolation[], reason = "INVALID_ARGUMENT"): ConnectError {
  const shown = violations.slice(0, MAX_VIOLATIONS).map((v) => ({
    field: clip(v.field, MAX_FIELD),
    description: clip(v.description, MAX_DESCRIPTION),
    reason: v.reason ?? "",
  }));
  const more = violations.length - shown.length;
  const first = shown[0];
  const inMessage = shown.slice(0, 5).map((v) => `${v.field}: ${v.description}`);
  const rest = violations.length - inMessage.length;
  const message =
    violations.length === 1 && first
      ? `${first.field}: ${first.description}`
      : `${violations.length} invalid fields: ${inMessage.join("; ")}${rest > 0 ? `; and ${rest} more` : ""}`;
  const badRequest = create(BadRequestSchema, {
    fieldViolations: shown.map((v) => create(BadRequest_FieldViolationSchema, v)),
  });
  return new ConnectError(message, Code.InvalidArgument, undefined, [
    errorInfo(reason, more > 0 ? { more_violations: String(more) } : {}),
    { desc: BadRequestSchema, value: badRequest },
  ]);
}

export function notFound(kind: string, id: string): ConnectError {
  const shown = clip(id, MAX_ECHO);
  return rpcError(Code.NotFound, `${kind.toUpperCase()}_NOT_FOUND`, `${kind} "${shown}" not found`, {
    metadata: { [kind]: shown },
  });
}

export function resourceExhausted(reason: string, message: string, retryAfterMs: number): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted, undefined, [
    errorInfo(reason),
    { desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: durationFromMs(retryAfterMs) }) },
  ]);
}

export function unavailable(message: string, cause?: unknown): ConnectError {
  return new ConnectError(
    message,
    Code.Unavailable,
    undefined,
    [
      errorInfo("DATABASE_UNAVAILABLE"),
      { desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: durationFromMs(1000) }) },
    ],
    cause,
  );
}
