// What the adapter serves: its options, the implementations `routes` registers, and for each
// method (by gRPC path) grpc-js's definition and the adapter's handler with its interceptor
// chain, made once per options object and shared by the before-body check and the routes.

import {
  type BinaryReadOptions,
  type DescMessage,
  type DescMethod,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  type ConnectRouter,
  type ContextValues,
  createMethodImplSpec,
  createServiceImplSpec,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImplSpec,
} from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { type CallContext, UndecodableRequest } from "./context.js";
import { streamMethod } from "./streams.js";
import { unaryMethod } from "./unary.js";

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
   * API-key check that leaves its result in `values` for the auth interceptor). With
   * checkBeforeBody in the server's interceptors it runs when the metadata arrives, and a call it
   * refuses is answered without reading its body; without it, grpc-js has read the body by then.
   */
  beforeCall?: (
    req: { headers: Record<string, string | undefined> },
    rpc: { service: string; method: string },
    values: ContextValues,
  ) => Promise<unknown>;
}

/** A method as the adapter serves it. */
export interface AdaptedMethod {
  readonly spec: MethodImplSpec;
  /** Its names as `beforeCall` takes them. */
  readonly rpc: { service: string; method: string };
  readonly definition: grpc.MethodDefinition<unknown, unknown>;
  readonly handler: grpc.UntypedHandleCall;
  /**
   * Runs the interceptors (and, if they let it through, the implementation) on an empty request,
   * for a call refused before its body; resolves to the error the call is answered with.
   */
  refuse(ctx: CallContext): Promise<unknown>;
}

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

const adapted = new WeakMap<GrpcJsAdapterOptions, Map<string, AdaptedMethod>>();

/** Every method `options.routes` registers, by gRPC path; built once per options object. */
export function adaptedMethods(options: GrpcJsAdapterOptions): Map<string, AdaptedMethod> {
  let methods = adapted.get(options);
  if (methods) return methods;
  methods = new Map();
  for (const service of collectServiceSpecs(options.routes)) {
    for (const spec of Object.values(service.methods)) {
      const definition = methodDefinition(spec.method, options.readOptions);
      methods.set(definition.path, {
        spec,
        rpc: { service: spec.method.parent.typeName, method: spec.method.name },
        definition,
        ...(spec.kind === "unary" ? unaryMethod(spec, options) : streamMethod(spec, options)),
      });
    }
  }
  adapted.set(options, methods);
  return methods;
}

/** grpc-js's definition of a method: its path, and protobuf-es toBinary/fromBinary as its codecs. */
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
