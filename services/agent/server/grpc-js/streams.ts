// Server, client and bidi streams: the interceptors see the same stream requests, responses
// (normalized messages) and errors as connect's runner (transformInvokeImplementation) gives them
// on the connect-node path, without that runner: its chain of down-compiled async generators,
// linked abort controllers and per-call interceptor closures stays alive as long as the stream
// (an idle WatchTask held far more memory in them than in grpc-js's own call). Here the chain is
// built once per method, the context is the call's one small object (context.ts), and messages go
// from the interceptors' iterable straight to the call.

import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type MethodImplSpec, type StreamRequest, type StreamResponse } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import {
  type CallContext,
  callContextKey,
  chainInterceptors,
  checkLate,
  contextOfCall,
  copyHeaders,
  undecodable,
} from "./context.js";
import type { AdaptedMethod, GrpcJsAdapterOptions } from "./methods.js";

type StreamSpec = Extract<MethodImplSpec, { kind: "server_streaming" | "client_streaming" | "bidi_streaming" }>;
type StreamNext = (req: StreamRequest<DescMessage, DescMessage>) => Promise<StreamResponse<DescMessage, DescMessage>>;
type StreamCall = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

export function streamMethod(
  spec: StreamSpec,
  options: GrpcJsAdapterOptions,
): Pick<AdaptedMethod, "handler" | "refuse"> {
  const invoke = chainInterceptors<StreamNext>((req) => runImplementation(spec, req), options.interceptors);
  const refuse = (ctx: CallContext) => refuseStream(invoke, ctx);
  if (spec.kind === "client_streaming") {
    return {
      handler: (call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        void answerClientStream(spec, invoke, call, callback, options);
      },
      refuse,
    };
  }
  return {
    handler: (call: StreamCall) => {
      const input =
        spec.kind === "server_streaming"
          ? new SingleRequest((call as grpc.ServerWritableStream<unknown, unknown>).request)
          : requests(call as grpc.ServerDuplexStream<unknown, unknown>);
      void runStream(spec, invoke, call, input, options);
    },
    refuse,
  };
}

/** The innermost step of the chain: the implementation, on the context of the call the request belongs to. */
async function runImplementation(
  spec: StreamSpec,
  req: StreamRequest<DescMessage, DescMessage>,
): Promise<StreamResponse<DescMessage, DescMessage>> {
  const ctx: CallContext = req.contextValues.get(callContextKey)!;
  const handlerCtx = ctx.handlerContext(req);
  let messages: AsyncIterable<object>;
  if (spec.kind === "server_streaming") messages = spec.impl(await ensureSingle(req.message), handlerCtx);
  else if (spec.kind === "bidi_streaming") messages = spec.impl(req.message, handlerCtx);
  else messages = oneMessage(await spec.impl(req.message, handlerCtx));
  return {
    stream: true,
    message: new Normalized(spec.method.output, messages),
    method: spec.method,
    service: spec.method.parent,
    header: ctx.responseHeader,
    trailer: ctx.responseTrailer,
  };
}

async function runStream(
  spec: StreamSpec,
  invoke: StreamNext,
  call: StreamCall,
  input: AsyncIterable<MessageShape<DescMessage>>,
  options: GrpcJsAdapterOptions,
): Promise<void> {
  const ctx = contextOfCall(spec.method, call, options);
  try {
    const check = checkLate(ctx, options);
    if (check) await check;
    const res = await invoke(ctx.requestFor(true, input) as StreamRequest);
    copyHeaders(res.header, ctx.responseHeader);
    for await (const message of res.message) {
      ctx.sendHeader(call);
      if (!call.write(message)) await new Promise((resolve) => call.once("drain", resolve));
      if (call.cancelled) return;
    }
    copyHeaders(res.trailer, ctx.responseTrailer);
    ctx.sendHeader(call);
    call.end(ctx.trailerMetadata());
  } catch (err) {
    if (call.cancelled) return;
    ctx.sendHeader(call);
    call.emit("error", ctx.status(err));
  } finally {
    ctx.end();
  }
}

/** A client stream: its requests through the chain, and the one response back through grpc-js's callback. */
async function answerClientStream(
  spec: StreamSpec,
  invoke: StreamNext,
  call: grpc.ServerReadableStream<unknown, unknown>,
  callback: grpc.sendUnaryData<unknown>,
  options: GrpcJsAdapterOptions,
): Promise<void> {
  const ctx = contextOfCall(spec.method, call, options);
  let response: MessageShape<DescMessage> | undefined;
  try {
    const check = checkLate(ctx, options);
    if (check) await check;
    const res = await invoke(ctx.requestFor(true, requests(call)) as StreamRequest);
    copyHeaders(res.header, ctx.responseHeader);
    for await (const message of res.message) response = message;
    copyHeaders(res.trailer, ctx.responseTrailer);
  } catch (err) {
    ctx.fail(call, callback, err);
    return;
  }
  ctx.reply(call, callback, response);
}

/** A refused call's chain, on no requests: resolves to the error it fails with (undefined if none). */
async function refuseStream(invoke: StreamNext, ctx: CallContext): Promise<unknown> {
  try {
    const res = await invoke(ctx.requestFor(true, noRequests()) as StreamRequest);
    // Let through by the interceptors: nothing of the implementation's is sent.
    await res.message[Symbol.asyncIterator]().return?.();
    return undefined;
  } catch (err) {
    return err;
  }
}

async function* noRequests(): AsyncGenerator<never> {}

/** The request messages of a client stream, failing on the first that does not decode. */
async function* requests(
  call: grpc.ServerDuplexStream<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>,
): AsyncGenerator<MessageShape<DescMessage>> {
  for await (const message of call) {
    const bad = undecodable(message);
    if (bad) throw bad;
    yield message as MessageShape<DescMessage>;
  }
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
    this.iterator();
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

/** A client stream's one response, as the response stream the interceptors see. */
async function* oneMessage(message: object): AsyncGenerator<object> {
  yield message;
}
