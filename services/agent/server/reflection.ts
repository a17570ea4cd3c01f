// gRPC server reflection, v1 and v1alpha, from the public protocol
// (grpc/grpc doc/server-reflection.md): lets grpcurl and `buf curl --reflect`
// build requests without the .proto files. Answers come from the descriptors
// that protobuf-es embeds in generated code.
import type { DescFile } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import * as v1 from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/**
 * Routes for both reflection services. `files` are the files whose services the server
 * mounts (pass the health file too when Health is mounted); the reflection services are
 * always listed. Every dependency of a file, well-known types included, can be fetched.
 */
export function createReflectionRoutes(files: DescFile[]): (router: ConnectRouter) => void {
  const index = indexFiles([
    ...files,
    v1.file_grpc_reflection_v1_reflection,
    v1alpha.file_grpc_reflection_v1alpha_reflection,
  ]);
  return (router) => {
    router.service(v1.ServerReflection, {
      async *serverReflectionInfo(requests) {
        const sent = new Set<string>();
        for await (const req of requests) yield answer(index, req, sent);
      },
    });
    // v1alpha has the same messages under another package: same wire format, so convert
    // through bytes and keep one implementation.
    router.service(v1alpha.ServerReflection, {
      async *serverReflectionInfo(requests) {
        const sent = new Set<string>();
        for await (const req of requests) {
          const asV1 = fromBinary(
            v1.ServerReflectionRequestSchema,
            toBinary(v1alpha.ServerReflectionRequestSchema, req),
          );
          const res = answer(index, asV1, sent);
          yield fromBinary(v1alpha.ServerReflectionResponseSchema, toBinary(v1.ServerReflectionResponseSchema, res));
        }
      },
    });
  };
}

interface DescriptorIndex {
  /** Fully qualified names of the services to advertise, in the order given. */
  services: string[];
  /** By proto file name, e.g. "agentd/v1/task.proto"; includes every transitive dependency. */
  files: Map<string, DescFile>;
  /** Services, methods, messages, fields, oneofs, enums, enum values, extensions → declaring file. */
  symbols: Map<string, DescFile>;
  messages: Set<string>;
  /** Extendee type name → extension number → declaring file. */
  extensions: Map<string, Map<number, DescFile>>;
  /** Serialized FileDescriptorProto per file name, filled on first use. */
  encoded: Map<string, Uint8Array>;
}

function indexFiles(roots: DescFile[]): DescriptorIndex {
  const index: DescriptorIndex = {
    services: [],
    files: new Map(),
    symbols: new Map(),
    messages: new Set(),
    extensions: new Map(),
    encoded: new Map(),
  };
  const addFile = (file: DescFile) => {
    if (index.files.has(file.proto.name)) return;
    index.files.set(file.proto.name, file);
    for (const dep of file.dependencies) addFile(dep);
    for (const type of nestedTypes(file)) {
      index.symbols.set(type.typeName, file);
      switch (type.kind) {
        case "service":
          for (const method of type.methods) index.symbols.set(`${type.typeName}.${method.name}`, file);
          break;
        case "message":
          index.messages.add(type.typeName);
          for (const field of type.fields) index.symbols.set(`${type.typeName}.${field.name}`, file);
          for (const oneof of type.oneofs) index.symbols.set(`${type.typeName}.${oneof.name}`, file);
          break;
        case "enum": {
          // Enum values are scoped as siblings of their enum, not children (C++ scoping rules).
          const scope = type.typeName.slice(0, type.typeName.length - type.name.length);
          for (const value of type.values) index.symbols.set(`${scope}${value.name}`, file);
          break;
        }
        case "extension": {
          const byNumber = index.extensions.get(type.extendee.typeName) ?? new Map<number, DescFile>();
          byNumber.set(type.number, file);
          index.extensions.set(type.extendee.typeName, byNumber);
          break;
        }
      }
    }
  };
  for (const file of roots) {
    addFile(file);
    for (const service of file.services) {
      if (!index.services.includes(service.typeName)) index.services.push(service.typeName);
    }
  }
  return index;
}

/** One reply per request. `sent` holds the files already sent on this stream. */
function answer(
  index: DescriptorIndex,
  req: v1.ServerReflectionRequest,
  sent: Set<string>,
): v1.ServerReflectionResponse {
  const reply = (messageResponse: v1.ServerReflectionResponse["messageResponse"]) =>
    create(v1.ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse });
  const error = (code: Code, message: string) =>
    reply({ case: "errorResponse", value: create(v1.ErrorResponseSchema, { errorCode: code, errorMessage: message }) });
  const files = (file: DescFile | undefined, what: string) =>
    file === undefined
      ? error(Code.NotFound, `${what} not found`)
      : reply({
          case: "fileDescriptorResponse",
          value: create(v1.FileDescriptorResponseSchema, { fileDescriptorProto: withDependencies(index, file, sent) }),
        });

  const request = req.messageRequest;
  switch (request.case) {
    case "listServices":
      return reply({
        case: "listServicesResponse",
        value: create(v1.ListServiceResponseSchema, { service: index.services.map((name) => ({ name })) }),
      });
    case "fileByFilename":
      return files(index.files.get(request.value), `file "${request.value}"`);
    case "fileContainingSymbol": {
      const symbol = request.value.replace(/^\./, "");
      return files(index.symbols.get(symbol), `symbol "${symbol}"`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = request.value;
      return files(
        index.extensions.get(containingType)?.get(extensionNumber),
        `extension ${extensionNumber} of "${containingType}"`,
      );
    }
    case "allExtensionNumbersOfType": {
      const type = request.value;
      if (!index.messages.has(type)) return error(Code.NotFound, `message type "${type}" not found`);
      const numbers = [...(index.extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
      return reply({
        case: "allExtensionNumbersResponse",
        value: create(v1.ExtensionNumberResponseSchema, { baseTypeName: type, extensionNumber: numbers }),
      });
    }
    case undefined:
      return error(Code.InvalidArgument, "the request sets no message_request");
  }
}

/**
 * The file itself (always), then its transitive imports not yet sent on this stream,
 * as the spec allows, so that overlapping queries do not resend the well-known types.
 */
function withDependencies(index: DescriptorIndex, file: DescFile, sent: Set<string>): Uint8Array[] {
  const out: Uint8Array[] = [];
  const queue = [file];
  const seen = new Set<string>();
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const name = next.proto.name;
    if (seen.has(name)) continue;
    seen.add(name);
    if (next === file || !sent.has(name)) {
      out.push(encode(index, next));
      sent.add(name);
    }
    queue.push(...next.dependencies);
  }
  return out;
}

function encode(index: DescriptorIndex, file: DescFile): Uint8Array {
  let bytes = index.encoded.get(file.proto.name);
  if (bytes === undefined) {
    bytes = toBinary(FileDescriptorProtoSchema, file.proto);
    index.encoded.set(file.proto.name, bytes);
  }
  return bytes;
}
