// An error as a client sees it, whatever carries it: a Connect, gRPC or gRPC-Web
// answer (handlers/interceptors.ts), an SSE error body (streams/sse.ts) or a Converse
// rejection (streams/conversation.ts). Also what an unexpected failure becomes: a
// database outage is UNAVAILABLE and a transaction conflict ABORTED (waiting and
// retrying helps), anything else INTERNAL. The failure itself travels as `cause`,
// which is logged, never sent.
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { isDatabaseUnavailable, isTransactionConflict } from "../../shared/db/database.js";
import { clip, MAX_MESSAGE, rpcError, unavailable } from "../../shared/errors.js";

/** The gRPC name of a code: FAILED_PRECONDITION for Code.FailedPrecondition (UNKNOWN for a number no code has). */
export function codeName(code: Code): string {
  return (Code[code] ?? "Unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** The name Connect's JSON errors give a code: failed_precondition. */
export function connectCodeName(code: Code): string {
  return codeName(code).toLowerCase();
}

/** The error's ErrorInfo reason, or its code's name when it has none. */
export function reasonOf(error: ConnectError): string {
  return error.findDetails(ErrorInfoSchema)[0]?.reason ?? codeName(error.code);
}

/** An error of bounded size, whatever made it (an echo of a huge value must still fit in a header). */
function bounded(error: ConnectError): ConnectError {
  if (error.rawMessage.length <= MAX_MESSAGE) return error;
  const out = new ConnectError(clip(error.rawMessage, MAX_MESSAGE), error.code, error.metadata, undefined, error.cause);
  // Details made here are bounded at their source (shared/errors.ts); keep them as they are.
  out.details.push(...error.details);
  return out;
}

export interface WireErrorOptions {
  /** Named in the INTERNAL message, for the operator to find the logged cause. */
  requestId?: string;
  /** What to do about an outage, for the UNAVAILABLE message. */
  unavailableMessage?: string;
}

/** What a client is told of `error`: a ConnectError as it is (bounded), any other failure
 * as UNAVAILABLE, ABORTED or INTERNAL, keeping it as `cause`. */
export function toWireError(error: unknown, options: WireErrorOptions = {}): ConnectError {
  if (error instanceof ConnectError) return bounded(error);
  if (isTransactionConflict(error)) {
    return rpcError(Code.Aborted, "TRANSACTION_CONFLICT", "the request conflicted with a concurrent change; retry it", {
      cause: error,
    });
  }
  if (isDatabaseUnavailable(error))
    return unavailable(options.unavailableMessage ?? "the database is unavailable; retry with backoff", error);
  const message =
    options.requestId === undefined ? "internal error" : `internal error (request id ${options.requestId})`;
  return rpcError(Code.Internal, "INTERNAL", message, { cause: error });
}
