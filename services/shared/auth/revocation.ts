// Streams end when their key is revoked: a stream watched by a `RevocationWatch`
// stops with UNAUTHENTICATED once the key that opened it no longer authenticates
// (checked by `Authenticator.watch`, shared per key). The protocol layer then
// aborts the call's signal, which ends the handler's watch of the task and
// releases its stream slot.
import { Code, type ConnectError } from "@connectrpc/connect";
import { rpcError } from "../errors.js";
import type { Authenticator, AuthFailure } from "./authenticator.js";

function revokedError(failure: AuthFailure): ConnectError {
  return rpcError(Code.Unauthenticated, failure.reason, failure.message);
}

/**
 * The revocation watch of one stream, as a part of the stream's one wrapper (the agent's
 * ResponseStream calls `start` at the first pull and `stop` once the stream is over): it fails
 * the stream's pending pull, or else its next one, with UNAUTHENTICATED as soon as
 * `authorization` is revoked. A plain object rather than a wrapper of its own: an idle stream
 * keeps its pending pull alive, and a wrapper per interceptor made that pull a chain.
 */
export class RevocationWatch {
  private unwatch: (() => void) | undefined;

  constructor(
    private readonly auth: Authenticator,
    private readonly authorization: string,
  ) {}

  start(stream: { interrupt(error: unknown): void }): void {
    this.unwatch = this.auth.watch(this.authorization, (failure) => stream.interrupt(revokedError(failure)));
  }

  stop(): void {
    const unwatch = this.unwatch;
    this.unwatch = undefined;
    unwatch?.();
  }
}
