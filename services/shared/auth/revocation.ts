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

const done = (): IteratorReturnResult<undefined> => ({ done: true, value: undefined });

/** `messages`, ending with UNAUTHENTICATED as soon as `authorization` is revoked. */
export function endOnRevocation<T>(
  messages: AsyncIterable<T>,
  auth: Authenticator,
  authorization: string,
): AsyncIterableIterator<T> {
  return new RevocableStream(messages, auth, authorization);
}

// One plain iterator object per stream (an async generator kept its suspended frame, its request
// queue and a closure per pull alive for as long as the stream was idle). The watch starts with
// the first pull, as the generator's body did, and ends with the stream.
class RevocableStream<T> implements AsyncIterableIterator<T> {
  private it: AsyncIterator<T> | undefined;
  private revoked: AuthFailure | undefined;
  /** Ends the pending pull with the revocation. */
  private interrupt: ((failure: AuthFailure) => void) | undefined;
  private unwatch: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly messages: AsyncIterable<T>,
    private readonly auth: Authenticator,
    private readonly authorization: string,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.closed) return Promise.resolve(done());
    let it = this.it;
    if (!it) {
      this.unwatch = this.auth.watch(this.authorization, (failure) => {
        this.revoked = failure;
        this.interrupt?.(failure);
      });
      try {
        it = this.it = this.messages[Symbol.asyncIterator]();
      } catch (error) {
        this.close();
        return Promise.reject(error);
      }
    }
    if (this.revoked) return this.fail(this.revoked);
    let pending: Promise<IteratorResult<T>>;
    try {
      pending = it.next();
    } catch (error) {
      this.close();
      return Promise.reject(error);
    }
    // One settle per message (no reactions pile up on a long-lived promise).
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      this.interrupt = (failure) => {
        this.interrupt = undefined;
        this.close();
        reject(revokedError(failure));
      };
      pending.then(
        (result) => {
          if (this.interrupt === undefined) return;
          this.interrupt = undefined;
          if (result.done) this.close();
          resolve(result);
        },
        (error) => {
          if (this.interrupt === undefined) return;
          this.interrupt = undefined;
          this.close();
          reject(error);
        },
      );
    });
  }

  /** As the generator this was: stops watching; the messages themselves end with the call's signal. */
  return(): Promise<IteratorResult<T>> {
    this.close();
    return Promise.resolve(done());
  }

  private fail(failure: AuthFailure): Promise<never> {
    this.close();
    return Promise.reject(revokedError(failure));
  }

  private close(): void {
    this.closed = true;
    const unwatch = this.unwatch;
    this.unwatch = undefined;
    unwatch?.();
  }
}
