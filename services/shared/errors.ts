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

export const ERROR_DOMAIN = "agentd.dev";

/** Turns any thrown value into an Error, keeping the original as `cause`. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : JSON.stringify(value), { cause: value });
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
  return new ConnectError(message, code, undefined, [errorInfo(reason, opts.metadata)], opts.cause);
}

export function invalidArgument(violations: FieldViolation[], reason = "INVALID_ARGUMENT"): ConnectError {
  const first = violations[0];
  const message =
    violations.length === 1 && first
      ? `${first.field}: ${first.description}`
      : `${violations.length} invalid fields: ${violations.map((v) => `${v.field}: ${v.description}`).join("; ")}`;
  const badRequest = create(BadRequestSchema, {
    fieldViolations: violations.map((v) =>
      create(BadRequest_FieldViolationSchema, { field: v.field, description: v.description, reason: v.reason ?? "" }),
    ),
  });
  return new ConnectError(message, Code.InvalidArgument, undefined, [
    errorInfo(reason),
    { desc: BadRequestSchema, value: badRequest },
  ]);
}

export function notFound(kind: string, id: string): ConnectError {
  return rpcError(Code.NotFound, `${kind.toUpperCase()}_NOT_FOUND`, `${kind} "${id}" not found`, {
    metadata: { [kind]: id },
  });
}

export function resourceExhausted(reason: string, message: string, retryAfterMs: number): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted, undefined, [
    errorInfo(reason),
    { desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: durationFromMs(retryAfterMs) }) },
  ]);
}

export function unavailable(message: string, cause?: unknown): ConnectError {
  return new ConnectError(message, Code.Unavailable, undefined, [
    errorInfo("DATABASE_UNAVAILABLE"),
    { desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: durationFromMs(1000) }) },
  ], cause);
}
