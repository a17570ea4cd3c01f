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

/** What a watch ends: the agent's response stream. */
interface Interruptible {
  interrupt(error: unknown): void;
}

/** The open streams of one key, watched with one `Authenticator.watch` for all of them. */
interface KeyStreams {
  streams: Set<RevocationWatch>;
  unwatch: () => void;
}

/** Per authenticator, per authorization header: the streams being watched. */
const watchedKeys = new WeakMap<Authenticator, Map<string, KeyStreams>>();

/**
 * The revocation watch of one stream, as a part of the stream's one wrapper (the agent's
 * ResponseStream calls `start` at the first pull and `stop` once the stream is over): it fails
 * the stream's pending pull, or else its next one, with UNAUTHENTICATED as soon as
 * `authorization` is revoked. The streams of one key share one watch (one listener for all), so
 * an idle stream keeps only its entry in that key's set, not closures of its own.
 */
export class RevocationWatch {
  private stream: Interruptible | undefined;
  private key: KeyStreams | undefined;

  constructor(
    private readonly auth: Authenticator,
    private readonly authorization: string,
  ) {}

  start(stream: Interruptible): void {
    this.stream = stream;
    let keys = watchedKeys.get(this.auth);
    if (!keys) {
      keys = new Map();
      watchedKeys.set(this.auth, keys);
    }
    let key = keys.get(this.authorization);
    if (!key) {
      const streams = new Set<RevocationWatch>();
      const fresh: KeyStreams = { streams, unwatch: noop };
      keys.set(this.authorization, fresh);
      fresh.unwatch = this.auth.watch(this.authorization, (failure) =>
        revoked(keys, this.authorization, fresh, failure),
      );
      key = fresh;
    }
    key.streams.add(this);
    this.key = key;
  }

  stop(): void {
    const key = this.key;
    this.key = undefined;
    this.stream = undefined;
    if (!key?.streams.delete(this) || key.streams.size > 0) return;
    const keys = watchedKeys.get(this.auth);
    if (keys?.get(this.authorization) === key) keys.delete(this.authorization);
    key.unwatch();
  }

  /** The key was revoked: the stream ends with its own UNAUTHENTICATED error. */
  interrupt(failure: AuthFailure): void {
    const stream = this.stream;
    this.key = this.stream = undefined;
    stream?.interrupt(revokedError(failure));
  }
}

function noop(): void {}

/** Ends every stream of the key; later streams of the key start a new watch. */
function revoked(keys: Map<string, KeyStreams>, authorization: string, key: KeyStreams, failure: AuthFailure): void {
  if (keys.get(authorization) === key) keys.delete(authorization);
  key.unwatch();
  const streams = [...key.streams];
  key.streams.clear();
  for (const watch of streams) watch.interrupt(failure);
}
