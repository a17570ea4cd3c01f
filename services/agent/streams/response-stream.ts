// One wrapper per RPC response stream for the interceptors that each used to wrap it: the end on
// revocation (authInterceptor), the error mapping (edgeInterceptor) and the measurement with its
// actor scope (rpcObserver). An idle stream keeps its pending pull for as long as it is open; with
// a wrapper per interceptor, that pull held a promise, its reactions, closures and an actor scope
// per wrapper. Here each interceptor attaches its part to the one wrapper instead.
//
// The parts act as the nested wrappers did, innermost first: the interrupter (revocation) ends the
// stream, the error mapping maps whatever the stream fails with (the revocation too), and the
// observer runs each pull in its scope and records the end with the mapped error. A part attached
// to a stream that already has a part meant to be outside it (or that has started) gets a new
// wrapper around the stream instead, so every order of interceptors keeps its nesting.

/** Ends a stream from outside, e.g. when its key is revoked. */
export interface Interruptible {
  /** Fails the pending pull (or else the next one) with `error`; the stream is then over. */
  interrupt(error: unknown): void;
}

/** The innermost part: something that may end the stream early (the revocation watch). */
export interface StreamInterrupter {
  /** At the first pull: from now on it may call `stream.interrupt`. */
  start(stream: Interruptible): void;
  /** The stream is over (completed, failed, interrupted or closed): stop watching. */
  stop(): void;
}

/** The middle part: the error the client gets for whatever the stream fails with. */
export interface StreamErrorMapping {
  map(error: unknown): unknown;
}

/** The outermost part: the scope each pull runs in, and the stream's end, recorded once. */
export interface StreamObserver {
  /** Runs `pull(stream)` in the call's scope. */
  enter<S, R>(pull: (stream: S) => R, stream: S): R;
  /** The stream is over: `error` is undefined when it completed. */
  ended(error: unknown): void;
  /** The client went away before the stream ended. */
  closedByClient(): void;
}

/** The parts, innermost first. */
const Part = { Interrupter: 0, Errors: 1, Observer: 2 } as const;
type Part = (typeof Part)[keyof typeof Part];

const done = (): IteratorReturnResult<undefined> => ({ done: true, value: undefined });

export class ResponseStream<T> implements AsyncIterableIterator<T>, Interruptible {
  private it: AsyncIterator<T> | undefined;
  private interrupter: StreamInterrupter | undefined;
  private errors: StreamErrorMapping | undefined;
  private observer: StreamObserver | undefined;
  /** The outermost part attached so far. */
  private outermost: Part | -1 = -1;
  /** Completed, failed or interrupted: with an interrupter, later pulls answer done. */
  private closed = false;
  /** The observer has been told the end. */
  private ended = false;
  /** An interruption that came while no pull was pending: the next pull fails with it. */
  private interruption: { error: unknown } | undefined;
  /** The pending pull's settling functions (with an interrupter, which may fail it first). */
  private resolve: ((result: IteratorResult<T>) => void) | undefined;
  private reject: ((error: unknown) => void) | undefined;
  /** Reactions to the messages' pull, bound once per stream rather than made per pull. */
  private reactions: [(result: IteratorResult<T>) => unknown, (error: unknown) => unknown] | undefined;

  private constructor(private readonly messages: AsyncIterable<T>) {}

  /** `messages` ending early through `interrupter`. */
  static withInterrupter<T>(messages: AsyncIterable<T>, interrupter: StreamInterrupter): AsyncIterableIterator<T> {
    const stream = ResponseStream.attachable(messages, Part.Interrupter);
    stream.interrupter = interrupter;
    return stream;
  }

  /** `messages` failing with `errors.map` of what they fail with. */
  static withErrorMapping<T>(messages: AsyncIterable<T>, errors: StreamErrorMapping): AsyncIterableIterator<T> {
    const stream = ResponseStream.attachable(messages, Part.Errors);
    stream.errors = errors;
    return stream;
  }

  /** `messages` pulled in `observer`'s scope, their end told to it. */
  static withObserver<T>(messages: AsyncIterable<T>, observer: StreamObserver): AsyncIterableIterator<T> {
    const stream = ResponseStream.attachable(messages, Part.Observer);
    stream.observer = observer;
    return stream;
  }

  /** `messages` itself when a part can still be attached there as the outermost, else a new wrapper. */
  private static attachable<T>(messages: AsyncIterable<T>, part: Part): ResponseStream<T> {
    const stream =
      messages instanceof ResponseStream && messages.outermost < part && messages.it === undefined
        ? (messages as ResponseStream<T>)
        : new ResponseStream(messages);
    stream.outermost = part;
    return stream;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.closed && this.interrupter) return Promise.resolve(done());
    const observer = this.observer;
    if (!observer) return ResponseStream.pull(this);
    try {
      return observer.enter(ResponseStream.pull, this);
    } catch (error) {
      this.end(error);
      return Promise.reject(error);
    }
  }

  async return(value?: unknown): Promise<IteratorResult<T>> {
    if (this.observer && !this.ended) {
      this.ended = true;
      this.observer.closedByClient();
    }
    if (this.interrupter) {
      // As the revocation wrapper did: stop watching; the messages end with the call's signal.
      this.close();
      return done();
    }
    // With an error mapping, only messages that have started are returned (as `yield*` did).
    const it = this.errors ? this.it : this.iterator();
    try {
      return (await it?.return?.(value)) ?? done();
    } catch (error) {
      throw this.mapped(error);
    }
  }

  interrupt(error: unknown): void {
    if (this.closed) return;
    const reject = this.reject;
    if (!reject) {
      this.interruption ??= { error };
      return;
    }
    this.resolve = this.reject = undefined;
    this.failWith(error, reject);
  }

  /** One pull of the messages: a static function (in the observer's scope), not a closure per pull. */
  private static pull<T>(stream: ResponseStream<T>): Promise<IteratorResult<T>> {
    let it = stream.it;
    let pending: Promise<IteratorResult<T>>;
    try {
      if (it === undefined) {
        // The first pull starts the interrupter, then the messages.
        stream.interrupter?.start(stream);
        it = stream.iterator();
      }
      const interruption = stream.interruption;
      if (interruption) return stream.failed(interruption.error);
      pending = it.next();
    } catch (error) {
      return stream.failed(error);
    }
    const reactions = stream.reactions ?? stream.bindReactions();
    if (!stream.interrupter) {
      return stream.errors || stream.observer
        ? (pending.then(reactions[0], reactions[1]) as Promise<IteratorResult<T>>)
        : pending;
    }
    // A promise of its own, which an interruption can fail before the messages answer.
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      stream.resolve = resolve;
      stream.reject = reject;
      pending.then(reactions[0], reactions[1]);
    });
  }

  private bindReactions(): NonNullable<ResponseStream<T>["reactions"]> {
    this.reactions = this.interrupter
      ? [this.settle.bind(this), this.fail.bind(this)]
      : [this.passOn.bind(this), this.rethrow.bind(this)];
    return this.reactions;
  }

  private iterator(): AsyncIterator<T> {
    this.it ??= this.messages[Symbol.asyncIterator]();
    return this.it;
  }

  /** With an interrupter: the messages answered the pending pull. */
  private settle(result: IteratorResult<T>): void {
    const resolve = this.resolve;
    if (!resolve) return; // interrupted meanwhile
    this.resolve = this.reject = undefined;
    if (result.done === true) {
      this.close();
      this.end(undefined);
    }
    resolve(result);
  }

  /** With an interrupter: the messages failed the pending pull. */
  private fail(error: unknown): void {
    const reject = this.reject;
    if (!reject) return; // interrupted meanwhile
    this.resolve = this.reject = undefined;
    this.failWith(error, reject);
  }

  /** Without an interrupter: the messages' answer, passed on. */
  private passOn(result: IteratorResult<T>): IteratorResult<T> {
    if (result.done === true) this.end(undefined);
    return result;
  }

  private rethrow(error: unknown): never {
    const mapped = this.mapped(error);
    this.end(mapped);
    throw mapped;
  }

  private failWith(error: unknown, reject: (error: unknown) => void): void {
    this.close();
    const mapped = this.mapped(error);
    this.end(mapped);
    reject(mapped);
  }

  private failed(error: unknown): Promise<never> {
    this.close();
    const mapped = this.mapped(error);
    this.end(mapped);
    return Promise.reject(mapped);
  }

  private mapped(error: unknown): unknown {
    return this.errors ? this.errors.map(error) : error;
  }

  /** Tells the observer the end, once. */
  private end(error: unknown): void {
    if (!this.observer || this.ended) return;
    this.ended = true;
    this.observer.ended(error);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.interrupter?.stop();
  }
}
