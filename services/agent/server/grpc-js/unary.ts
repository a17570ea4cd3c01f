// Unary calls: the interceptors and the implementation, chained once per method, run on the
// call's context (context.ts) as connect's invokeUnaryImplementation runs them (the same request
// and response fields, the same handler context), and the answer goes back through grpc-js's
// callback.

import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { MethodImplSpec, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
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

type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;
type UnaryNext = (req: UnaryRequest<DescMessage, DescMessage>) => Promise<UnaryResponse<DescMessage, DescMessage>>;

export function unaryMethod(spec: UnarySpec, options: GrpcJsAdapterOptions): Pick<AdaptedMethod, "handler" | "refuse"> {
  const invoke = chainInterceptors<UnaryNext>((req) => runImplementation(spec, req), options.interceptors);
  return {
    handler: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      void answer(spec, invoke, call, callback, options);
    },
    refuse: (ctx) =>
      invoke(ctx.requestFor(false, create(spec.method.input)) as UnaryRequest).then(refusedAnyway, failure),
  };
}

async function answer(
  spec: UnarySpec,
  invoke: UnaryNext,
  call: grpc.ServerUnaryCall<unknown, unknown>,
  callback: grpc.sendUnaryData<unknown>,
  options: GrpcJsAdapterOptions,
): Promise<void> {
  const ctx = contextOfCall(spec.method, call, options);
  let message: MessageShape<DescMessage>;
  try {
    const bad = undecodable(call.request);
    if (bad) throw bad;
    const check = checkLate(ctx, options);
    if (check) await check;
    const res = await invoke(ctx.requestFor(false, call.request) as UnaryRequest);
    copyHeaders(res.header, ctx.responseHeader);
    copyHeaders(res.trailer, ctx.responseTrailer);
    message = res.message;
  } catch (err) {
    ctx.fail(call, callback, err);
    return;
  }
  ctx.reply(call, callback, message);
}

/** The innermost step of the chain: the implementation, on the context of the call the request belongs to. */
async function runImplementation(spec: UnarySpec, req: UnaryRequest): Promise<UnaryResponse> {
  const ctx: CallContext = req.contextValues.get(callContextKey)!;
  const output = await spec.impl(req.message, ctx.handlerContext(req));
  return {
    stream: false,
    message: create(spec.method.output, output),
    method: spec.method,
    service: spec.method.parent,
    header: ctx.responseHeader,
    trailer: ctx.responseTrailer,
  };
}

/** The interceptors let a refused call through: it is answered with the refusal anyway. */
function refusedAnyway(): undefined {
  return undefined;
}

function failure(err: unknown): unknown {
  return err;
}
