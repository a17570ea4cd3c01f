// Serves the Connect service implementations through a grpc-js `Server`, so that gRPC calls
// skip connect-node's per-call pipeline while running the same handlers and interceptors.
// Routes are collected with a router that records each implementation instead of building
// connect handlers; each RPC becomes a grpc-js method whose (de)serializers are protobuf-es
// toBinary/fromBinary, invoked through connect's own implementation runner so that
// interceptors see the same requests and errors as on the connect-node path.

import {
  type BinaryReadOptions,
  create,
  type DescMessage,
  type DescMethod,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextKey,
  createContextValues,
  createMethodImplSpec,
  createServiceImplSpec,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImplSpec,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { invokeUnaryImplementation, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import * as grpc from "@grpc/grpc-js";

export interface GrpcJsAdapterOptions {
  routes: (router: ConnectRouter) => void;
  /** The same interceptors as the connect-node path, in the same order. */
  interceptors?: Interceptor[];
  /** protobuf-es binary read options (e.g. `recursionLimit`), as `binaryOptions` of the connect-node router. */
  readOptions?: Partial<BinaryReadOptions>;
  /** Per-call context values (as `contextValues` of the connect-node adapter). */
  contextValues?: (call: { metadata: grpc.Metadata; peer: string }) => ContextValues;
  /**
   * Runs once per call before the implementation (as `beforeBody` of rpc-handler.ts, e.g. the
   * API-key check that leaves its result in `values` for the auth interceptor). grpc-js has read
   * a unary body by then, so unlike on the connect-node path the body is not left unread.
   */
  beforeCall?: (
    req: { headers: Record<string, string | undefined> },
    rpc: { service: string; method: string },
    values: ContextValues,
  ) => Promise<unknown>;
}

/** Longest error message sent, as on the connect-node path (rpc-handler.ts). */
const MAX_ERROR_MESSAGE = 2048;

/** The implementations `routes` registers, without building connect handlers. */
export function collectServiceSpecs(routes: (router: ConnectRouter) => void): ServiceImplSpec[] {
  const specs: ServiceImplSpec[] = [];
  const router: ConnectRouter = {
    handlers: [],
    service(service, implementation) {
      specs.push(createServiceImplSpec(service, implementation));
      return router;
    },
    rpc(method, impl) {
      const spec = createMethodImplSpec(method, impl);
      specs.push({ service: method.parent, methods: { [method.localName]: spec } });
      return router;
    },
  };
  routes(router);
  return specs;
}

/** Each method's implementation by its gRPC path. */
function specsByPath(routes: (router: ConnectRouter) => void): Map<string, MethodImplSpec> {
  const byPath = new Map<string, MethodImplSpec>();
  for (const spec of collectServiceSpecs(routes)) {
    for (const method of Object.values(spec.methods)) {
      byPath.set(`/${method.method.parent.typeName}/${method.method.name}`, method);
    }
  }
  return byPath;
}

/**
 * Calls whose `beforeCall` ran when their metadata arrived (checkBeforeBody), with the context
 * values it filled, by the call's metadata (grpc-js hands the handler the same object).
 */
const checkedBeforeBody = new WeakMap<grpc.Metadata, ContextValues>();

/**
 * A grpc-js server interceptor that runs `beforeCall` (the API-key check) as soon as a call's
 * metadata arrives, before any of its body is read, as connect-node's path does. A call it
 * refuses is answered by the interceptors run on an empty request (so the client gets the same
 * error, logged and counted the same way), and its body is never read: a client without a valid
 * key cannot make the server read, or size-check, a large body. Pass it in the Server's
 * `interceptors` option, with the same options as addConnectRoutes.
 */
export function checkBeforeBody(options: GrpcJsAdapterOptions): grpc.ServerInterceptor {
  const specs = specsByPath(options.routes);
  const check = options.beforeCall;
  return (descriptor, call) => {
    const spec = specs.get(descriptor.path);
    if (!spec || !check) return new grpc.ServerInterceptingCall(call);
    const intercepted: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, proceed) {
            const source = {
              metadata,
              getDeadline: () => call.getDeadline(),
              getHost: () => call.getHost(),
              getPeer: () => call.getPeer(),
            };
            const values = newValues(source, options);
            const headers: Record<string, string> = {};
            for (const [key, value] of Object.entries(metadata.getMap())) {
              if (typeof value === "string") headers[key] = value;
            }
            check({ headers }, { service: spec.method.parent.typeName, method: spec.method.name }, values).then(
              (result) => {
                checkedBeforeBody.set(metadata, values);
                if (readsBody(result)) proceed(metadata);
                else void refuseUnread(spec, contextOf(spec, source, descriptor.path, values), intercepted, options);
              },
              (err: unknown) => intercepted.sendStatus(serviceError(err, new Headers())),
            );
          },
        });
      },
    });
    return intercepted;
  };
}

function readsBody(result: unknown): boolean {
  return !(typeof result === "object" && result !== null && (result as { readBody?: unknown }).readBody === false);
}

/** Answers a call refused before its body: the interceptors run on an empty request and fail it. */
async function refuseUnread(
  spec: MethodImplSpec,
  ctx: HandlerContext & { abort(reason?: unknown): void },
  call: grpc.ServerInterceptingCall,
  options: GrpcJsAdapterOptions,
): Promise<void> {
  const interceptors = options.interceptors ?? [];
  const empty = create(spec.method.input);
  let error: unknown = new ConnectError("the request was refused before its body was read", Code.Unauthenticated);
  try {
    if (spec.kind === "unary" || spec.kind === "client_streaming") {
      await invokeUnaryImplementation(spec as MethodImplSpec & { kind: "unary" }, ctx, empty, interceptors);
    } else {
      for await (const _ of transformInvokeImplementation(spec, ctx, interceptors)(noRequests())) break;
    }
  } catch (err) {
    error = err;
  }
  ctx.abort();
  // Trailers-only: the response headers travel in the one HEADERS frame with the status.
  const status = serviceError(error, ctx.responseTrailer);
  status.metadata.merge(toMetadata(ctx.responseHeader));
  // The unread body is stopped with the stream (grpc-js-injector.ts).
  call.sendStatus(status);
}

async function* noRequests(): AsyncGenerator<never> {}

/** Adds every service `routes` registers to a grpc-js server. */
export function addConnectRoutes(server: grpc.Server, options: GrpcJsAdapterOptions): void {
  for (const spec of collectServiceSpecs(options.routes)) {
    const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const method of Object.values(spec.methods)) {
      const name = method.method.name;
      definition[name] = methodDefinition(method.method, options.readOptions);
      implementation[name] = methodHandler(method, options);
    }
    server.addService(definition as grpc.ServiceDefinition, implementation);
  }
}

/**
 * A request whose bytes do not decode. grpc-js answers a throwing deserializer with INTERNAL;
 * the caller's bytes are INVALID_ARGUMENT, so the failure is carried to the handler instead.
 */
class UndecodableRequest {
  constructor(readonly reason: string) {}
}

function methodDefinition(
  method: DescMethod,
  readOptions: Partial<BinaryReadOptions> | undefined,
): grpc.MethodDefinition<unknown, unknown> {
  const input: DescMessage = method.input;
  const output: DescMessage = method.output;
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (m) => Buffer.from(toBinary(input, m as MessageShape<DescMessage>)),
    requestDeserialize: (bytes: Buffer) => {
      try {
        return fromBinary(input, bytes, readOptions);
      } catch (err) {
        return new UndecodableRequest(`parse binary: ${(err as Error).message}`);
      }
    },
    responseSerialize: (m) => asBuffer(toBinary(output, m as MessageShape<DescMessage>)),
    responseDeserialize: (bytes: Buffer) => fromBinary(output, bytes),
  };
}

/** The bytes toBinary made, as a Buffer over the same memory (Buffer.from(bytes) would copy them). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

type AnyCall =
  | grpc.ServerUnaryCall<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>
  | grpc.ServerReadableStream<unknown, unknown>;

type CallContext = HandlerContext & { abort(reason?: unknown): void; [callAbort]: CallAbort };

/**
 * An error built without a stack trace. The abort reasons below are made once per call (every
 * grpc-js call reports `cancelled` when its stream closes, also after a status was sent), where
 * capturing a stack through the async frames cost more than the rest of the context together;
 * nobody reads that stack (it would only name grpc-js internals).
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
 * A call's cancellation. Its AbortSignal is made only when something asks for it: most unary
 * handlers never do, and then ending the call (or its deadline) costs no controller and no abort
 * event. Once made, it is aborted as a connect-node call's would be.
 */
class CallAbort {
  private controller: AbortController | undefined;
  aborted = false;
  private reason: unknown;
  timer: NodeJS.Timeout | undefined;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

const callAbort = Symbol("the call's cancellation");

/** The connect HandlerContext of a grpc-js call: headers, deadline, cancellation, values. */
function handlerContext(spec: MethodImplSpec, call: AnyCall, options: GrpcJsAdapterOptions): CallContext {
  const ctx = contextOf(spec, call, call.getPath(), checkedBeforeBody.get(call.metadata) ?? newValues(call, options));
  (call as NodeJS.EventEmitter).once("cancelled", () => {
    if (!ctx[callAbort].aborted) ctx.abort(stacklessError("client cancelled the call", Code.Canceled));
  });
  return ctx;
}

/**
 * The abort reason of a unary call that has been answered (connect-node aborts a finished call's
 * signal too). One shared instance: grpc-js reports every call as cancelled once its stream
 * closes, and nothing can throw this into another call's answer.
 */
const CALL_ENDED = stacklessError("the call has ended", Code.Canceled);

/** What a HandlerContext is built from: a call's metadata and a few of its properties. */
interface CallSource {
  metadata: grpc.Metadata;
  getDeadline(): grpc.Deadline;
  getHost(): string;
  getPeer(): string;
}

function newValues(source: CallSource, options: GrpcJsAdapterOptions): ContextValues {
  return options.contextValues?.({ metadata: source.metadata, peer: source.getPeer() }) ?? createContextValues();
}

/**
 * A HandlerContext built here rather than by connect's createHandlerContext, which copies the
 * request headers into a second Headers and links three AbortControllers (the call's, a
 * deadline's, and one joining them) per call; this one has the same fields and behaviour with
 * at most one controller (made when the signal is first read, see CallAbort), a timer only when
 * the call has a deadline, and the headers read once.
 */
function contextOf(spec: MethodImplSpec, source: CallSource, path: string, contextValues: ContextValues): CallContext {
  const map = source.metadata.getMap();
  const requestHeader = new Headers();
  for (const key in map) {
    const value = map[key]!;
    requestHeader.append(key, typeof value === "string" ? value : Buffer.from(value).toString("base64"));
  }
  // grpc-js keeps content-type out of the metadata; the codec here is always binary protobuf.
  if (!("content-type" in map)) requestHeader.append("content-type", "application/grpc+proto");
  const deadline = source.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  const state = new CallAbort();
  let timeoutMs: () => number | undefined = noTimeout;
  if (Number.isFinite(at)) {
    const initial = Math.max(0, at - Date.now());
    const end = Date.now() + initial;
    timeoutMs = () => end - Date.now();
    if (initial <= 0) state.abort(stacklessError("the operation timed out", Code.DeadlineExceeded));
    else state.timer = setTimeout(timedOut, initial, state);
  }
  return {
    service: spec.method.parent,
    method: spec.method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: `http://${source.getHost()}${path}`,
    timeoutMs,
    get signal() {
      return state.signal;
    },
    requestHeader,
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    values: contextValues,
    abort(reason?: unknown) {
      state.abort(reason);
    },
    [callAbort]: state,
  };
}

function noTimeout(): undefined {
  return undefined;
}

function timedOut(state: CallAbort): void {
  state.abort(stacklessError("the operation timed out", Code.DeadlineExceeded));
}

/**
 * A unary call through the interceptors to its implementation, as connect's
 * invokeUnaryImplementation does (same request and response fields, same handler context),
 * except that the request's and the handler's `signal` are read from the call's context only
 * when asked for (see CallAbort).
 */
async function invokeUnary(
  spec: MethodImplSpec & { kind: "unary" },
  ctx: CallContext,
  input: MessageShape<DescMessage>,
  interceptors: Interceptor[],
): Promise<MessageShape<DescMessage>> {
  let next = implementation(spec, ctx);
  for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next);
  const req: UnaryRequest = {
    stream: false,
    message: input,
    method: spec.method,
    requestMethod: ctx.requestMethod,
    url: ctx.url,
    get signal() {
      return ctx.signal;
    },
    header: ctx.requestHeader,
    service: spec.method.parent,
    contextValues: ctx.values,
  };
  const res = (await next(req)) as UnaryResponse;
  copyHeaders(res.header, ctx.responseHeader);
  copyHeaders(res.trailer, ctx.responseTrailer);
  return res.message;
}

/** The innermost step of the chain. (Made here, not in a `let`: tsx's keepNames would name it per call.) */
function implementation(spec: MethodImplSpec & { kind: "unary" }, ctx: CallContext): Parameters<Interceptor>[0] {
  return ((req: UnaryRequest) => runUnary(spec, ctx, req)) as Parameters<Interceptor>[0];
}

async function runUnary(
  spec: MethodImplSpec & { kind: "unary" },
  ctx: CallContext,
  req: UnaryRequest,
): Promise<UnaryResponse> {
  // As connect's mergeRequest: the call's context with what the interceptors may have replaced.
  const handlerCtx: HandlerContext & { abort(reason?: unknown): void } = {
    service: req.service,
    method: ctx.method,
    protocolName: ctx.protocolName,
    requestMethod: ctx.requestMethod,
    url: ctx.url,
    timeoutMs: ctx.timeoutMs,
    get signal() {
      return req.signal;
    },
    requestHeader: req.header,
    responseHeader: ctx.responseHeader,
    responseTrailer: ctx.responseTrailer,
    values: req.contextValues,
    abort(reason?: unknown) {
      ctx.abort(reason);
    },
  };
  const output = await spec.impl(req.message, handlerCtx);
  return {
    stream: false,
    message: create(spec.method.output, output),
    method: spec.method,
    service: spec.method.parent,
    header: ctx.responseHeader,
    trailer: ctx.responseTrailer,
  };
}

/** As connect's copyHeaders: `to` becomes a copy of `from` (nothing to do when they are one). */
function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => {
    to.set(key, value);
  });
}

function toMetadata(headers: Headers): grpc.Metadata {
  const metadata = new grpc.Metadata();
  headers.forEach((value, key) => {
    if (key.endsWith("-bin")) metadata.add(key, Buffer.from(value, "base64"));
    else metadata.add(key, value);
  });
  return metadata;
}

/** A failure as grpc-js sends it: code, clipped message, trailers with google.rpc.Status details. */
function serviceError(err: unknown, trailer: Headers): grpc.StatusObject {
  const error = ConnectError.from(err);
  const status = new Headers(trailer);
  setTrailerStatus(status, error);
  status.delete("grpc-status");
  status.delete("grpc-message");
  const message = error.rawMessage;
  return {
    code: error.code as number as grpc.status,
    details: message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE)}…` : message,
    metadata: toMetadata(status),
  };
}

function undecodable(request: unknown): ConnectError | undefined {
  return request instanceof UndecodableRequest ? new ConnectError(request.reason, Code.InvalidArgument) : undefined;
}

/** The request messages of a client stream, failing on the first that does not decode. */
async function* requests(
  call: grpc.ServerDuplexStream<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>,
) {
  for await (const message of call) {
    const bad = undecodable(message);
    if (bad) throw bad;
    yield message as MessageShape<DescMessage>;
  }
}

function methodHandler(spec: MethodImplSpec, options: GrpcJsAdapterOptions): grpc.UntypedHandleCall {
  const interceptors = options.interceptors ?? [];
  if (spec.kind === "unary") {
    return (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const ctx = handlerContext(spec, call, options);
      const bad = undecodable(call.request);
      const result = bad
        ? Promise.reject(bad)
        : beforeCall(spec, call, ctx, options).then(() =>
            invokeUnary(spec, ctx, call.request as MessageShape<DescMessage>, interceptors),
          );
      result.then(
        (message) => {
          sendUnaryHeader(call, ctx);
          callback(null, message, toMetadata(ctx.responseTrailer));
          ctx.abort(CALL_ENDED);
        },
        (err: unknown) => {
          sendUnaryHeader(call, ctx);
          callback(serviceError(err, ctx.responseTrailer));
          ctx.abort(CALL_ENDED);
        },
      );
    };
  }
  if (spec.kind === "client_streaming") return clientStreamHandler(spec, options);
  return streamHandler(spec as StreamSpec, options);
}

/** Client streams (none in agentd's API today) go through connect's own runner. */
function clientStreamHandler(spec: MethodImplSpec, options: GrpcJsAdapterOptions): grpc.UntypedHandleCall {
  const interceptors = options.interceptors ?? [];
  return (call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    const ctx = handlerContext(spec, call, options);
    void (async () => {
      try {
        await beforeCall(spec, call, ctx, options);
        let response: unknown;
        for await (const message of transformInvokeImplementation(spec, ctx, interceptors)(requests(call))) {
          response = message;
        }
        sendHeader(call, ctx);
        callback(null, response, toMetadata(ctx.responseTrailer));
      } catch (err) {
        sendHeader(call, ctx);
        callback(serviceError(err, ctx.responseTrailer));
      }
    })();
  };
}

/** A unary call's response headers, if the handler or interceptors set any: sent once, before its status. */
function sendUnaryHeader(call: grpc.ServerUnaryCall<unknown, unknown>, ctx: HandlerContext): void {
  let metadata: grpc.Metadata | undefined;
  ctx.responseHeader.forEach((value, key) => {
    metadata ??= new grpc.Metadata();
    if (key.endsWith("-bin")) metadata.add(key, Buffer.from(value, "base64"));
    else metadata.add(key, value);
  });
  if (metadata) call.sendMetadata(metadata);
}

// ------------------------------------------------------------------------- streams --
//
// Server and bidi streams skip connect's runner (transformInvokeImplementation), whose chain of
// down-compiled async generators, linked abort controllers and per-call interceptor closures
// stays alive as long as the stream: an idle WatchTask held far more memory in them than in
// grpc-js's own call. Here the interceptor chain is built once per method (the call's context
// travels in its context values), the context is one small object, and messages go from the
// interceptors' iterable straight to the call. Interceptors see the same requests, responses
// (normalized messages) and errors as on the connect-node path.

/** The context of the call an interceptor chain is running for. */
const streamContextKey = createContextKey<StreamContext | undefined>(undefined, { description: "grpc-js stream" });

type StreamSpec = Extract<MethodImplSpec, { kind: "server_streaming" | "bidi_streaming" }>;

type StreamCall = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

function streamHandler(spec: StreamSpec, options: GrpcJsAdapterOptions): grpc.UntypedHandleCall {
  const method = spec.method;
  const invoke = chain(
    async (req: StreamRequest<DescMessage, DescMessage>): Promise<StreamResponse<DescMessage, DescMessage>> => {
      const ctx = req.contextValues.get(streamContextKey)!;
      const handlerCtx = ctx.merged(req);
      const messages =
        spec.kind === "server_streaming"
          ? spec.impl(await ensureSingle(req.message), handlerCtx)
          : spec.impl(req.message, handlerCtx);
      return {
        stream: true,
        message: new Normalized(method.output, messages as AsyncIterable<object>),
        method,
        service: method.parent,
        header: ctx.responseHeader,
        trailer: ctx.responseTrailer,
      };
    },
    options.interceptors ?? [],
  );
  return (call: StreamCall) => {
    const ctx = new StreamContext(spec, call, options);
    const input: AsyncIterable<MessageShape<DescMessage>> =
      spec.kind === "server_streaming"
        ? new SingleRequest((call as grpc.ServerWritableStream<unknown, unknown>).request)
        : requests(call as grpc.ServerDuplexStream<unknown, unknown>);
    void runStream(spec, call, ctx, input, invoke, options);
  };
}

function chain(
  last: (req: StreamRequest<DescMessage, DescMessage>) => Promise<StreamResponse<DescMessage, DescMessage>>,
  interceptors: Interceptor[],
): (req: StreamRequest<DescMessage, DescMessage>) => Promise<StreamResponse<DescMessage, DescMessage>> {
  let next = last as Parameters<Interceptor>[0];
  for (const interceptor of [...interceptors].reverse()) next = interceptor(next);
  return next as typeof last;
}

async function runStream(
  spec: StreamSpec,
  call: StreamCall,
  ctx: StreamContext,
  input: AsyncIterable<MessageShape<DescMessage>>,
  invoke: ReturnType<typeof chain>,
  options: GrpcJsAdapterOptions,
): Promise<void> {
  try {
    await beforeCall(spec, call, ctx, options);
    const res = await invoke({
      stream: true,
      message: input,
      method: spec.method,
      service: spec.method.parent,
      requestMethod: ctx.requestMethod,
      url: ctx.url,
      signal: ctx.signal,
      header: ctx.requestHeader,
      contextValues: ctx.values,
    });
    copyHeaders(res.header, ctx.responseHeader);
    for await (const message of res.message) {
      sendHeader(call, ctx);
      if (!call.write(message)) await new Promise((resolve) => call.once("drain", resolve));
      if (call.cancelled) return;
    }
    copyHeaders(res.trailer, ctx.responseTrailer);
    sendHeader(call, ctx);
    call.end(toMetadata(ctx.responseTrailer));
  } catch (err) {
    if (call.cancelled) return;
    sendHeader(call, ctx);
    call.emit("error", serviceError(err, ctx.responseTrailer));
  } finally {
    ctx.done();
  }
}

const DEADLINE_EXCEEDED = () => new ConnectError("the operation timed out", Code.DeadlineExceeded);

/**
 * A stream's HandlerContext: as connect's createHandlerContext builds it (the same headers,
 * values, deadline and cancellation), with one abort controller instead of three linked ones,
 * no closures per call, and the response trailer made only when something sets it.
 */
class StreamContext implements HandlerContext {
  readonly method: DescMethod;
  readonly service: HandlerContext["service"];
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly url: string;
  readonly requestHeader: Headers;
  readonly responseHeader = new Headers();
  readonly values: ContextValues;
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly deadline: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private trailer: Headers | undefined;

  constructor(spec: StreamSpec, call: StreamCall, options: GrpcJsAdapterOptions) {
    this.method = spec.method;
    this.service = spec.method.parent;
    this.url = `http://${call.getHost()}${call.getPath()}`;
    this.signal = this.controller.signal;
    this.requestHeader = new Headers();
    for (const [key, value] of Object.entries(call.metadata.getMap())) {
      this.requestHeader.append(key, typeof value === "string" ? value : Buffer.from(value).toString("base64"));
    }
    // grpc-js keeps content-type out of the metadata; the codec here is always binary protobuf.
    if (!this.requestHeader.has("content-type")) this.requestHeader.set("content-type", "application/grpc+proto");
    this.values = checkedBeforeBody.get(call.metadata) ?? newValues(call, options);
    this.values.set(streamContextKey, this);
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    if (Number.isFinite(at)) {
      this.deadline = at;
      if (at <= Date.now()) this.abort(DEADLINE_EXCEEDED());
      else this.timer = setTimeout(abortAtDeadline, at - Date.now(), this);
    }
    cancelledCalls.set(call, this);
    (call as NodeJS.EventEmitter).on("cancelled", abortCancelled);
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
    this.controller.abort(reason);
  }

  /** The call is over: its deadline timer goes. */
  done(): void {
    clearTimeout(this.timer);
  }

  /** The context the implementation gets: this one, or (when an interceptor replaced the
   * request's headers, signal, values or service) a copy with the request's, as connect's runner does. */
  merged(req: StreamRequest<DescMessage, DescMessage>): HandlerContext {
    if (
      req.header === this.requestHeader &&
      req.signal === this.signal &&
      req.contextValues === this.values &&
      req.service === this.service
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
}

function abortAtDeadline(ctx: StreamContext): void {
  ctx.abort(DEADLINE_EXCEEDED());
}

const cancelledCalls = new WeakMap<object, StreamContext>();

function abortCancelled(this: object): void {
  cancelledCalls.get(this)?.abort(new ConnectError("client cancelled the call", Code.Canceled));
}

/** A server stream's one request (or the reason it does not decode), read once. */
class SingleRequest implements AsyncIterable<MessageShape<DescMessage>>, AsyncIterator<MessageShape<DescMessage>> {
  constructor(private request: unknown) {}

  [Symbol.asyncIterator]() {
    return this;
  }

  async next(): Promise<IteratorResult<MessageShape<DescMessage>>> {
    const request = this.request;
    if (request === undefined) return { done: true, value: undefined };
    this.request = undefined;
    const bad = undecodable(request);
    if (bad) throw bad;
    return { done: false, value: request as MessageShape<DescMessage> };
  }

  async return(): Promise<IteratorResult<MessageShape<DescMessage>>> {
    this.request = undefined;
    return { done: true, value: undefined };
  }
}

/** The one message of a server stream's request, as connect's runner takes it. */
async function ensureSingle(messages: AsyncIterable<MessageShape<DescMessage>>): Promise<MessageShape<DescMessage>> {
  const it = messages[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) {
    throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
  }
  const second = await it.next();
  if (second.done !== true) {
    throw new ConnectError(
      "protocol error: received extra input message for server-streaming method",
      Code.Unimplemented,
    );
  }
  return first.value;
}

/** The implementation's messages as full messages of the method's output (connect's normalizeIterable). */
class Normalized implements AsyncIterable<MessageShape<DescMessage>>, AsyncIterator<MessageShape<DescMessage>> {
  private it: AsyncIterator<object> | undefined;

  constructor(
    private readonly desc: DescMessage,
    private readonly source: AsyncIterable<object>,
  ) {}

  [Symbol.asyncIterator]() {
    this.it ??= this.source[Symbol.asyncIterator]();
    return this;
  }

  next(): Promise<IteratorResult<MessageShape<DescMessage>>> {
    // No async frame of its own: one reaction on the source's promise while the stream idles.
    return this.iterator()
      .next()
      .then((result) => this.normalize(result));
  }

  async return(value?: unknown): Promise<IteratorResult<MessageShape<DescMessage>>> {
    const it = this.iterator();
    return it.return ? this.normalize(await it.return(value)) : { done: true, value: undefined };
  }

  async throw(error?: unknown): Promise<IteratorResult<MessageShape<DescMessage>>> {
    const it = this.iterator();
    if (!it.throw) throw error;
    return this.normalize(await it.throw(error));
  }

  private iterator(): AsyncIterator<object> {
    this.it ??= this.source[Symbol.asyncIterator]();
    return this.it;
  }

  private normalize(result: IteratorResult<object>): IteratorResult<MessageShape<DescMessage>> {
    return result.done === true
      ? result
      : { done: false, value: create(this.desc, result.value as MessageInitShape<DescMessage>) };
  }
}

function beforeCall(
  spec: MethodImplSpec,
  call: AnyCall,
  ctx: HandlerContext,
  options: GrpcJsAdapterOptions,
): Promise<unknown> {
  // Already run by checkBeforeBody when the metadata arrived.
  if (!options.beforeCall || checkedBeforeBody.has(call.metadata)) return Promise.resolve();
  const headers: Record<string, string> = {};
  ctx.requestHeader.forEach((value, key) => {
    headers[key] = value;
  });
  return options.beforeCall(
    { headers },
    { service: spec.method.parent.typeName, method: spec.method.name },
    ctx.values,
  );
}

const headerSent = new WeakSet<object>();

/** Response headers the handler or interceptors set, sent once before the first message or status. */
function sendHeader(call: AnyCall, ctx: HandlerContext): void {
  if (headerSent.has(call)) return;
  headerSent.add(call);
  let any = false;
  ctx.responseHeader.forEach(() => {
    any = true;
  });
  if (any) call.sendMetadata(toMetadata(ctx.responseHeader));
}
