// RPC errors as a client sees them: the Connect code, the stable `reason` from
// google.rpc.ErrorInfo, one entry per bad field from google.rpc.BadRequest, and
// the wait google.rpc.RetryInfo asks for. Browser-safe.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";

export interface FieldViolation {
  field: string;
  description: string;
  reason: string;
}

/** A failed call. `code` is the Connect code name in snake case, e.g. `invalid_argument`. */
export class AgentdError extends ConnectError {
  // The name stays "ConnectError": Connect recognises its errors by name and would wrap this one otherwise.
  static override [Symbol.hasInstance](v: unknown): boolean {
    return v instanceof Error && "fieldViolations" in v && "codeName" in v;
  }
  /** e.g. `not_found`, `invalid_argument`, `unavailable` (Connect's names). */
  readonly codeName: string;
  /** The stable machine-readable reason, e.g. `AGENT_NOT_FOUND` ("" when the server gave none). */
  readonly reason: string;
  /** ErrorInfo's metadata. */
  readonly info: Record<string, string>;
  readonly fieldViolations: FieldViolation[];
  /** How long the server asks to wait before retrying, when it said. */
  readonly retryDelayMs: number | undefined;

  constructor(err: ConnectError) {
    super(err.rawMessage, err.code, err.metadata, [], err.cause);
    this.details = err.details;
    this.codeName = codeName(err.code);
    const info = err.findDetails(ErrorInfoSchema)[0];
    this.reason = info?.reason ?? "";
    this.info = { ...(info?.metadata ?? {}) };
    this.fieldViolations = (err.findDetails(BadRequestSchema)[0]?.fieldViolations ?? []).map((v) => ({
      field: v.field,
      description: v.description,
      reason: v.reason,
    }));
    const retry = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
    this.retryDelayMs = retry ? Number(retry.seconds) * 1000 + Math.round(retry.nanos / 1e6) : undefined;
  }
}

/** `Code.InvalidArgument` → `invalid_argument`, as the Connect protocol spells it. */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** Any thrown value as an AgentdError (network failures become `unavailable`/`unknown` as Connect decides). */
export function toAgentdError(value: unknown): AgentdError {
  if (value instanceof AgentdError) return value;
  return new AgentdError(ConnectError.from(value));
}

/** Codes after which a stream can be resumed from its cursor. */
export function isTransient(err: AgentdError): boolean {
  return [
    Code.Unavailable,
    Code.Unknown,
    Code.Internal,
    Code.DeadlineExceeded,
    Code.ResourceExhausted,
    Code.Aborted,
    Code.Canceled,
  ].includes(err.code);
}
