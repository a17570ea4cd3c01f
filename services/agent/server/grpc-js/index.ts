// Serves the Connect service implementations through a grpc-js `Server`, so that gRPC calls skip
// connect-node's per-call pipeline while running the same handlers and interceptors. Routes are
// collected with a router that records each implementation instead of building connect handlers
// (methods.ts); each RPC becomes a grpc-js method whose (de)serializers are protobuf-es
// toBinary/fromBinary, run on one kind of call context (context.ts) through an interceptor chain
// built once per method (unary.ts, streams.ts), so that interceptors see the same requests and
// errors as on the connect-node path. The API key is checked before the body (before-body.ts).
// The one port hands grpc-js its HTTP/2 connections, and each later stream of one, through
// injector.ts.

import type * as grpc from "@grpc/grpc-js";
import { adaptedMethods, type GrpcJsAdapterOptions } from "./methods.js";

export { checkBeforeBody } from "./before-body.js";
export { collectServiceSpecs, type GrpcJsAdapterOptions } from "./methods.js";

/** Adds every service `options.routes` registers to a grpc-js server. */
export function addConnectRoutes(server: grpc.Server, options: GrpcJsAdapterOptions): void {
  const services = new Map<
    string,
    { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }
  >();
  for (const method of adaptedMethods(options).values()) {
    const name = method.spec.method.parent.typeName;
    let service = services.get(name);
    if (!service) {
      service = { definition: {} as grpc.ServiceDefinition, implementation: {} };
      services.set(name, service);
    }
    (service.definition as Record<string, grpc.MethodDefinition<unknown, unknown>>)[method.spec.method.name] =
      method.definition;
    service.implementation[method.spec.method.name] = method.handler;
  }
  for (const { definition, implementation } of services.values()) server.addService(definition, implementation);
}
