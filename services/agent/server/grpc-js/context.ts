// The connect HandlerContext of a grpc-js call, one type for every kind of call, and what goes
// back to the client from it: response headers, trailers, the status of a failure.

import type { DescMessage, DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextKey,
  type ContextValues,
  createContextKey,
  type HandlerContext,
  type Interceptor,
  type StreamRequest,
  type UnaryRequest,
} from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import * as grpc from "@grpc/grpc-js";
import type { GrpcJsAdapterOptions } from "./methods.js";

/** Longest error message sent, as on the connect-node path (rpc-handler.ts). */
const MAX_ERROR_MESSAGE = 2048;

/** A grpc-js call of any kind, as its handler gets it. */
export type AnyCall =
  | grpc.ServerUnaryCall<unknown, unknown>
  | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>;

/** What a context is built from besides the metadata: a grpc-js call, or the call a server interceptor sees. */
export interface CallSource {
  getDeadline(): grpc.Deadline;
  getHost(): string;
  getPeer(): string;
}

/**
 * The context of the call an interceptor chain runs for. The chains are built once per method
 * (methods.ts), so the call travels in its context values, which every interceptor passes on.
 */
export const callContextKey = createContextKey<CallContext | undefined>(undefined, { description: "grpc-js call" });

/**
 * An error built without a stack trace. Abort reasons are made once per call (grpc-js reports
 * every call as `cancelled` once its stream closes, also after a status was sent), where capturing
 * a stack through the async frames cost more than the rest of the context together; nobody reads
 * that stack (it would only name grpc-js internals).
 */
function stacklessError(message: string, code: Code): ConnectError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new ConnectError(message, code);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * The abort reason of a call that is over (connect-node aborts a finished call's signal too). One
 * shared instance: nothing can throw it into another call's answer.
 */
const CALL_ENDED = stacklessError("the call has ended", Code.Canceled);

/** The request headers as `beforeCall` takes them: the first value of each key, binary ones in base64. */
export function headerRecord(metadata: grpc.Metadata): Record<string, string> {
  // getMap makes a new object per call: its binary values are replaced in place.
  const map = metadata.getMap();
  for (const key in map) {
    const value = map[key]!;
    if (typeof value !== "string") map[key] = Buffer.from(value).toString("base64");
  }
  return map as Record<string, string>;
}

/**
 * A HandlerContext built here rather than by connect's createHandlerContext, which copies the
 * request headers into a second Headers and links three AbortControllers per call. This one has
 * the same fields and behaviour with at most one controller, made when the signal is first read
 * (most unary handlers never read it, and then ending the call costs no controller and no abort
 * event), a timer only when the call has a deadline, the response trailer made only when read,
 * and its methods on the prototype (no closures per call).
 */
export class CallContext implements HandlerContext {
  readonly service: HandlerContext["service"];
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly url: string;
  readonly requestHeader = new Headers();
  readonly responseHeader = new Headers();
  readonly values: ContextValues;
  /** Whether `beforeCall` has run for this call (before-body.ts, when its metadata arrived). */
  checked = false;
  private aborted = false;
  private reason: unknown;
  private controller: AbortController | undefined;
  private readonly deadline: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private trailer: Headers | undefined;
  private headerSent = false;
  /** The request this context made for the interceptors (see handlerContext). */
  private request: object | undefined;

  constructor(
    readonly method: DescMethod,
    path: string,
    headers: Record<string, string>,
    metadata: grpc.Metadata,
    source: CallSource,
    options: GrpcJsAdapterOptions,
  ) {
    this.service = method.parent;
    this.url = `http://${source.getHost()}${path}`;
    for (const key in headers) this.requestHeader.append(key, headers[key]!);
    // grpc-js keeps content-type out of the metadata; the codec here is always binary protobuf.
    if (!("content-type" in headers)) this.requestHeader.append("content-type", "application/grpc+proto");
    this.values = options.contextValues?.({ metadata, peer: source.getPeer() }) ?? new CallValues();
    this.values.set(callContextKey, this);
    const deadline = source.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    if (Number.isFinite(at)) {
      this.deadline = at;
      const left = at - Date.now();
      if (left <= 0) this.abort(stacklessError("the operation timed out", Code.DeadlineExceeded));
      else this.timer = setTimeout(abortAtDeadline, left, this);
    }
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  get responseTrailer(): Headers {
    this.trailer ??= new Headers();
    return this.trailer;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  abort(reason?: unknown): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }

  /** The call is over: its deadline timer goes and its signal (if anyone holds it) is aborted. */
  end(): void {
    this.abort(CALL_ENDED);
  }

  /** The client cancelled the call (or grpc-js ended it): an answered call is already aborted, and makes no error. */
  cancelled(): void {
    if (!this.aborted) this.abort(stacklessError("client cancelled the call", Code.Canceled));
  }

  /** Aborts this context when the grpc-js call is cancelled (by the client, or by grpc-js at its deadline). */
  follow(call: AnyCall): void {
    (call as Carrier)[followedBy] = this;
    (call as NodeJS.EventEmitter).on("cancelled", abortCancelled);
  }

  /** The request the interceptor chain starts from, as connect's runner makes it. */
  requestFor(stream: boolean, message: unknown): UnaryRequest | StreamRequest {
    const request = new CallRequest(this, stream, message) as unknown as UnaryRequest | StreamRequest;
    this.request = request;
    return request;
  }

  /**
   * The context the implementation gets at the end of the chain: this one, or (when an interceptor
   * replaced the request's headers, signal, values or service) a copy with the request's, as
   * connect's mergeRequest makes it.
   */
  handlerContext(
    req: UnaryRequest<DescMessage, DescMessage> | StreamRequest<DescMessage, DescMessage>,
  ): HandlerContext {
    if (
      req === this.request ||
      (req.header === this.requestHeader &&
        req.contextValues === this.values &&
        req.service === this.service &&
        req.signal === this.signal)
    ) {
      return this;
    }
    return {
      method: this.method,
      service: req.service,
      protocolName: this.protocolName,
      requestMethod: this.requestMethod,
      url: this.url,
      requestHeader: req.header,
      responseHeader: this.responseHeader,
      responseTrailer: this.responseTrailer,
      values: req.contextValues,
      signal: req.signal,
      timeoutMs: () => this.timeoutMs(),
    };
  }

  /** Response headers the handler or interceptors set, sent once, before the first message or the status. */
  sendHeader(call: AnyCall): void {
    if (this.headerSent) return;
    this.headerSent = true;
    let metadata: grpc.Metadata | undefined;
    this.responseHeader.forEach((value, key) => {
      metadata ??= new grpc.Metadata();
      addHeader(metadata, key, value);
    });
    if (metadata) call.sendMetadata(metadata);
  }

  /** The trailers of a call that succeeded. */
  trailerMetadata(): grpc.Metadata {
    return this.trailer ? toMetadata(this.trailer) : new grpc.Metadata();
  }

  /** Answers a call with one response (unary, client stream): its header, then the message and
   * trailers; the call is then over. */
  reply<M>(call: AnyCall, callback: grpc.sendUnaryData<M>, message: M): void {
    this.sendHeader(call);
    callback(null, message, this.trailerMetadata());
    this.end();
  }

  /** Answers a call with one response (unary, client stream) with the status of `err`. */
  fail(call: AnyCall, callback: grpc.sendUnaryData<never>, err: unknown): void {
    this.sendHeader(call);
    callback(this.status(err));
    this.end();
  }

  /** A failure as grpc-js sends it: code, clipped message, trailers with google.rpc.Status details. */
  status(err: unknown): grpc.StatusObject {
    const error = ConnectError.from(err);
    const trailer = new Headers(this.trailer);
    setTrailerStatus(trailer, error);
    trailer.delete("grpc-status");
    trailer.delete("grpc-message");
    const message = error.rawMessage;
    return {
      code: error.code as number as grpc.status,
      details: message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE)}…` : message,
      metadata: toMetadata(trailer),
    };
  }
}

function abortAtDeadline(ctx: CallContext): void {
  ctx.abort(stacklessError("the operation timed out", Code.DeadlineExceeded));
}

/**
 * A call's context is kept on grpc-js's own objects, under these symbols: on its metadata by the
 * before-body check (grpc-js hands the handler the same object), on the call for its `cancelled`
 * event. Properties rather than WeakMap entries, which cost about 0.5-1 us per set and get.
 */
const checkedContext = Symbol("grpc-js call context, made before the body");
const followedBy = Symbol("grpc-js call context");
type Carrier = { [checkedContext]?: CallContext; [followedBy]?: CallContext };

function abortCancelled(this: Carrier): void {
  this[followedBy]?.cancelled();
}

/**
 * A request of the chain. Its `signal` is an own property (an interceptor that spreads the
 * request copies it) whose getter reads the call's, so that the controller is made only if
 * something asks. One shared descriptor: a getter in an object literal made per call cost about
 * six times as much as defining it here.
 */
class CallRequest {
  readonly method: DescMethod;
  readonly service: HandlerContext["service"];
  readonly requestMethod: string;
  readonly url: string;
  readonly header: Headers;
  readonly contextValues: ContextValues;

  constructor(
    ctx: CallContext,
    readonly stream: boolean,
    readonly message: unknown,
  ) {
    this.method = ctx.method;
    this.service = ctx.service;
    this.requestMethod = ctx.requestMethod;
    this.url = ctx.url;
    this.header = ctx.requestHeader;
    this.contextValues = ctx.values;
    Object.defineProperty(this, "signal", SIGNAL_OF_CALL);
  }
}

const SIGNAL_OF_CALL: PropertyDescriptor = {
  get(this: CallRequest): AbortSignal {
    return this.contextValues.get(callContextKey)!.signal;
  },
  enumerable: true,
  configurable: true,
};

/**
 * Hands the context made when a call's metadata arrived (before-body.ts) on to its handler, so
 * that the headers are read and the context built once per call.
 */
export function checkedBeforeBody(metadata: grpc.Metadata, ctx: CallContext): void {
  ctx.checked = true;
  (metadata as Carrier)[checkedContext] = ctx;
}

/**
 * The context of a call reaching its handler: the one made when its metadata arrived, or (on a
 * server without the before-body check) a new one, whose `beforeCall` then runs here.
 */
export function contextOfCall(method: DescMethod, call: AnyCall, options: GrpcJsAdapterOptions): CallContext {
  const ctx =
    (call.metadata as Carrier)[checkedContext] ??
    new CallContext(method, call.getPath(), headerRecord(call.metadata), call.metadata, call, options);
  ctx.follow(call);
  return ctx;
}

/** Runs `beforeCall` for a call the before-body check did not see; undefined when there is nothing to wait for. */
export function checkLate(ctx: CallContext, options: GrpcJsAdapterOptions): Promise<unknown> | undefined {
  if (ctx.checked || !options.beforeCall) return undefined;
  ctx.checked = true;
  const headers: Record<string, string> = {};
  ctx.requestHeader.forEach((value, key) => {
    headers[key] = value;
  });
  return options.beforeCall({ headers }, { service: ctx.method.parent.typeName, method: ctx.method.name }, ctx.values);
}

/** As connect's createContextValues, with its methods on a prototype instead of three closures per call. */
class CallValues implements ContextValues {
  get<T>(key: ContextKey<T>): T {
    const values = this as unknown as Record<symbol, T>;
    return key.id in values ? values[key.id]! : key.defaultValue;
  }

  set<T>(key: ContextKey<T>, value: T): this {
    (this as unknown as Record<symbol, T>)[key.id] = value;
    return this;
  }

  delete(key: ContextKey<unknown>): this {
    delete (this as unknown as Record<symbol, unknown>)[key.id];
    return this;
  }
}

/** As connect's copyHeaders: `to` becomes a copy of `from` (nothing to do when they are one). */
export function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => {
    to.set(key, value);
  });
}

export function toMetadata(headers: Headers): grpc.Metadata {
  const metadata = new grpc.Metadata();
  headers.forEach((value, key) => {
    addHeader(metadata, key, value);
  });
  return metadata;
}

function addHeader(metadata: grpc.Metadata, key: string, value: string): void {
  if (key.endsWith("-bin")) metadata.add(key, Buffer.from(value, "base64"));
  else metadata.add(key, value);
}

/**
 * A request whose bytes do not decode. grpc-js answers a throwing deserializer with INTERNAL;
 * the caller's bytes are INVALID_ARGUMENT, so the failure is carried to the handler instead.
 */
export class UndecodableRequest {
  constructor(readonly reason: string) {}
}

export function undecodable(request: unknown): ConnectError | undefined {
  return request instanceof UndecodableRequest ? new ConnectError(request.reason, Code.InvalidArgument) : undefined;
}

/** `last` behind the interceptors, the first of them outermost (as connect's applyInterceptors); built once per method. */
export function chainInterceptors<R>(last: R, interceptors: Interceptor[] | undefined): R {
  let next = last as Parameters<Interceptor>[0];
  for (let i = (interceptors?.length ?? 0) - 1; i >= 0; i--) next = interceptors![i]!(next);
  return next as R;
}
