import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";
import {
  type BadRequest,
  BadRequestSchema,
  type ErrorInfo,
  ErrorInfoSchema,
} from "../../gen/google/rpc/error_details_pb.js";

/** Awaits a call that must fail with `code`; returns the error for further checks. */
export async function expectCode(call: Promise<unknown>, code: Code): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    const err = ConnectError.from(error);
    expect(Code[err.code], err.message).toBe(Code[code]);
    return err;
  }
  throw new Error(`expected the call to fail with code ${Code[code]}, but it succeeded`);
}

export function errorInfo(err: ConnectError): ErrorInfo | undefined {
  return err.findDetails(ErrorInfoSchema)[0];
}

export function badRequest(err: ConnectError): BadRequest | undefined {
  return err.findDetails(BadRequestSchema)[0];
}
