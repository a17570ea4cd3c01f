// Streams end when their key is revoked: a stream's messages, passed through
// `endOnRevocation`, stop with UNAUTHENTICATED once the key that opened it no
// longer authenticates (checked by `Authenticator.watch`, shared per key). The
// protocol layer then aborts the call's signal, which ends the handler's watch
// of the task and releases its stream slot.
import { Code, type ConnectError } from "@connectrpc/connect";
import { rpcError } from "../errors.js";
import type { Authenticator, AuthFailure } from "./authenticator.js";

function revokedError(failure: AuthFailure): ConnectError {
  return rpcError(Code.Unauthenticated, failure.reason, failure.message);
}

/** `messages`, ending with UNAUTHENTICATED as soon as `authorization` is revoked. */
export async function* endOnRevocation<T>(
  messages: AsyncIterable<T>,
  auth: Authenticator,
  authorization: string,
): AsyncGenerator<T, void> {
  let revoked: AuthFailure | undefined;
  let interrupt: ((failure: AuthFailure) => void) | undefined;
  const unwatch = auth.watch(authorization, (failure) => {
    revoked = failure;
    interrupt?.(failure);
  });
  const it = messages[Symbol.asyncIterator]();
  try {
    for (;;) {
      if (revoked) throw revokedError(revoked);
      const pending = it.next();
      // One settle per message (no reactions pile up on a long-lived promise).
      const result = await new Promise<IteratorResult<T> | AuthFailure>((resolve, reject) => {
        interrupt = resolve;
        pending.then(resolve, reject);
      });
      interrupt = undefined;
      if ("ok" in result) throw revokedError(result);
      if (result.done) return;
      yield result.value;
    }
  } finally {
    unwatch();
  }
}
