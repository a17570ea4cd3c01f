// The API-key check before the body: a grpc-js server interceptor that runs `beforeCall` as soon
// as a call's metadata arrives, as connect-node's path does (rpc-handler.ts beforeBody), and
// answers a call it refuses without reading any of its body.

import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { CallContext, checkedBeforeBody, headerRecord } from "./context.js";
import { type AdaptedMethod, adaptedMethods, type GrpcJsAdapterOptions } from "./methods.js";

/**
 * A grpc-js server interceptor that runs `beforeCall` (the API-key check) when a call's metadata
 * arrives. The call's context is built there, once, and handed on to its handler
 * (checkedBeforeBody). A call it refuses is answered by its method's interceptors run on an empty
 * request (so the client gets the same error, logged and counted the same way), and its body is
 * never read: a client without a valid key cannot make the server read, or size-check, a large
 * body. Pass it in the Server's `interceptors` option, with the same options as addConnectRoutes.
 */
export function checkBeforeBody(options: GrpcJsAdapterOptions): grpc.ServerInterceptor {
  const methods = adaptedMethods(options);
  const check = options.beforeCall;
  return (descriptor, call) => {
    const method = check ? methods.get(descriptor.path) : undefined;
    if (!method || !check) return new grpc.ServerInterceptingCall(call);
    // grpc-js calls a responder's and a listener's functions detached from their object: two closures per call.
    const intercepted: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, proceed) {
            void checkThenProceed(method, check, descriptor.path, metadata, call, intercepted, proceed, options);
          },
        });
      },
    });
    return intercepted;
  };
}

async function checkThenProceed(
  method: AdaptedMethod,
  check: NonNullable<GrpcJsAdapterOptions["beforeCall"]>,
  path: string,
  metadata: grpc.Metadata,
  call: grpc.ServerInterceptingCallInterface,
  intercepted: grpc.ServerInterceptingCall,
  proceed: (metadata: grpc.Metadata) => void,
  options: GrpcJsAdapterOptions,
): Promise<void> {
  const headers = headerRecord(metadata);
  const ctx = new CallContext(method.spec.method, path, headers, metadata, call, options);
  let result: unknown;
  try {
    result = await check({ headers }, method.rpc, ctx.values);
  } catch (err) {
    ctx.end();
    intercepted.sendStatus(ctx.status(err));
    return;
  }
  checkedBeforeBody(metadata, ctx);
  if (readsBody(result)) proceed(metadata);
  else await refuseUnread(method, ctx, intercepted);
}

function readsBody(result: unknown): boolean {
  return !(typeof result === "object" && result !== null && (result as { readBody?: unknown }).readBody === false);
}

/** Answers a call refused before its body: its method's interceptors run on an empty request and fail it. */
async function refuseUnread(method: AdaptedMethod, ctx: CallContext, call: grpc.ServerInterceptingCall): Promise<void> {
  const error =
    (await method.refuse(ctx)) ??
    new ConnectError("the request was refused before its body was read", Code.Unauthenticated);
  ctx.end();
  // Trailers-only: the response headers travel in the one HEADERS frame with the status.
  const status = ctx.status(error);
  ctx.responseHeader.forEach((value, key) => {
    if (key.endsWith("-bin")) status.metadata.add(key, Buffer.from(value, "base64"));
    else status.metadata.add(key, value);
  });
  // The unread body is stopped with the stream (injector.ts).
  call.sendStatus(status);
}
