// Builds the OpenAPI 3.1 document of the Connect JSON form of every unary RPC
// (POST /<package>.<Service>/<Method>, proto3 JSON bodies) plus the SSE route.
// Pure: descriptors in, a JSON object out; plugin.ts wraps it as a protoc plugin.
import {
  type DescEnum,
  type DescField,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
  ScalarType,
} from "@bufbuild/protobuf";
import { getComments } from "@bufbuild/protoplugin";

type Schema = Record<string, unknown>;

/** Connect's mapping of codes to HTTP statuses (connectrpc.com/docs/protocol#error-codes). */
export const CONNECT_HTTP_STATUS: Record<string, number> = {
  CANCELLED: 499,
  UNKNOWN: 500,
  INVALID_ARGUMENT: 400,
  DEADLINE_EXCEEDED: 504,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  PERMISSION_DENIED: 403,
  RESOURCE_EXHAUSTED: 429,
  FAILED_PRECONDITION: 400,
  ABORTED: 409,
  OUT_OF_RANGE: 400,
  UNIMPLEMENTED: 501,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DATA_LOSS: 500,
  UNAUTHENTICATED: 401,
};

/** Every call may meet these (auth, limits, a database outage). */
const COMMON_CODES = ["UNAUTHENTICATED", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "UNAVAILABLE"];

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

function describe(desc: DescMessage | DescField | DescEnum | DescService | DescMethod): string | undefined {
  const text = getComments(desc).leading?.trim();
  return text ? text.replace(/^ /gm, "") : undefined;
}

/** proto3 JSON of the well-known types, by full name. */
const WELL_KNOWN: Record<string, Schema> = {
  "google.protobuf.Value": { description: "Any JSON value." },
  "google.protobuf.Struct": { type: "object", additionalProperties: true, description: "A JSON object." },
  "google.protobuf.ListValue": { type: "array", items: {}, description: "A JSON array." },
  "google.protobuf.Timestamp": {
    type: "string",
    format: "date-time",
    description: "RFC 3339, e.g. 2026-01-02T15:04:05.123Z.",
  },
  "google.protobuf.Duration": {
    type: "string",
    pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$",
    description: 'Seconds with an `s` suffix, e.g. "30s" or "1.5s".',
    examples: ["30s"],
  },
  "google.protobuf.FieldMask": {
    type: "string",
    description: 'Comma-separated field paths in lowerCamelCase, e.g. "url,enabled".',
  },
  "google.protobuf.Empty": { type: "object", additionalProperties: false },
  "google.protobuf.Any": {
    type: "object",
    properties: { "@type": { type: "string" } },
    required: ["@type"],
    additionalProperties: true,
  },
  "google.protobuf.StringValue": { type: ["string", "null"] },
  "google.protobuf.BoolValue": { type: ["boolean", "null"] },
  "google.protobuf.Int32Value": { type: ["integer", "null"], format: "int32" },
  "google.protobuf.UInt32Value": { type: ["integer", "null"], format: "int32" },
  "google.protobuf.Int64Value": { type: ["string", "null"], format: "int64" },
  "google.protobuf.UInt64Value": { type: ["string", "null"], format: "int64" },
  "google.protobuf.DoubleValue": { type: ["number", "null"] },
  "google.protobuf.FloatValue": { type: ["number", "null"] },
  "google.protobuf.BytesValue": { type: ["string", "null"], contentEncoding: "base64" },
};

function scalarSchema(type: ScalarType): Schema {
  switch (type) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64", description: "Base64." };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      // proto3 JSON writes 64-bit integers as strings (and accepts numbers).
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "int64", minimum: 0 };
    default:
      return { type: "integer", format: "int32" };
  }
}

function enumSchema(desc: DescEnum): Schema {
  return {
    type: "string",
    enum: desc.values.map((v) => v.name),
    ...(describe(desc) ? { description: describe(desc) } : {}),
  };
}

export function buildOpenApi(
  files: readonly DescFile[],
  opts: { title: string; version: string; packages: string[] },
): Schema {
  const schemas: Record<string, Schema> = {};
  const seen = new Set<string>();

  const typeRef = (desc: DescMessage | DescEnum): Schema => {
    if (desc.kind === "message" && WELL_KNOWN[desc.typeName]) return WELL_KNOWN[desc.typeName]!;
    if (!seen.has(desc.typeName)) {
      seen.add(desc.typeName);
      schemas[desc.typeName] = desc.kind === "enum" ? enumSchema(desc) : messageSchema(desc);
    }
    return ref(desc.typeName);
  };

  const fieldSchema = (field: DescField): Schema => {
    const single = (): Schema => {
      switch (field.fieldKind) {
        case "scalar":
          return scalarSchema(field.scalar);
        case "enum":
          return typeRef(field.enum);
        case "message":
          return typeRef(field.message);
        default:
          return {};
      }
    };
    switch (field.fieldKind) {
      case "list":
        return {
          type: "array",
          items:
            field.listKind === "scalar"
              ? scalarSchema(field.scalar)
              : field.listKind === "enum"
                ? typeRef(field.enum)
                : typeRef(field.message),
        };
      case "map":
        return {
          type: "object",
          additionalProperties:
            field.mapKind === "scalar"
              ? scalarSchema(field.scalar)
              : field.mapKind === "enum"
                ? typeRef(field.enum)
                : typeRef(field.message),
        };
      default:
        return single();
    }
  };

  function messageSchema(desc: DescMessage): Schema {
    const properties: Record<string, Schema> = {};
    for (const field of desc.fields) {
      const schema = fieldSchema(field);
      const notes = [
        describe(field),
        field.oneof ? `At most one of ${field.oneof.fields.map((f) => `\`${f.jsonName}\``).join(", ")}.` : undefined,
      ]
        .filter(Boolean)
        .join("\n\n");
      properties[field.jsonName] = notes
        ? schema.$ref
          ? { allOf: [schema], description: notes }
          : { ...schema, description: notes }
        : schema;
    }
    return {
      type: "object",
      properties,
      additionalProperties: false,
      ...(describe(desc) ? { description: describe(desc) } : {}),
    };
  }

  const connectError = {
    type: "object",
    description:
      "A Connect error. `details` carry google.rpc messages: ErrorInfo (the stable `reason`), BadRequest (field violations), RetryInfo.",
    properties: {
      code: {
        type: "string",
        enum: Object.keys(CONNECT_HTTP_STATUS).map((c) => (c === "CANCELLED" ? "canceled" : c.toLowerCase())),
      },
      message: { type: "string" },
      details: {
        type: "array",
        items: {
          type: "object",
          properties: {
            type: { type: "string", description: "Fully-qualified message name, e.g. google.rpc.ErrorInfo." },
            value: {
              type: "string",
              contentEncoding: "base64",
              description: "The message in protobuf binary, base64 (unpadded).",
            },
            debug: { description: "The message as proto3 JSON, when the server adds it." },
          },
          required: ["type", "value"],
        },
      },
    },
    required: ["code"],
  };

  const paths: Record<string, Schema> = {};
  const services = files.filter((f) => opts.packages.includes(f.proto.package)).flatMap((f) => f.services);
  for (const service of services) {
    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      const doc = describe(method) ?? "";
      const errorsText = doc.slice(doc.search(/Errors?:/) >= 0 ? doc.search(/Errors?:/) : doc.length);
      const codes = new Set([
        ...COMMON_CODES,
        ...[...errorsText.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]!).filter((c) => c in CONNECT_HTTP_STATUS),
      ]);
      const byStatus = new Map<number, string[]>();
      for (const code of codes)
        byStatus.set(CONNECT_HTTP_STATUS[code]!, [...(byStatus.get(CONNECT_HTTP_STATUS[code]!) ?? []), code]);
      const responses: Record<string, Schema> = {
        "200": { description: "Success.", content: { "application/json": { schema: typeRef(method.output) } } },
      };
      for (const [status, names] of [...byStatus].sort((a, b) => a[0] - b[0])) {
        responses[String(status)] = {
          description: names.map((n) => n.toLowerCase()).join(", "),
          content: { "application/json": { schema: ref("connect.Error") } },
        };
      }
      paths[`/${service.typeName}/${method.name}`] = {
        post: {
          operationId: `${service.name}_${method.name}`,
          tags: [service.name],
          summary: doc.split(/(?<=\.)\s/)[0],
          description: doc,
          parameters: [
            {
              name: "Connect-Protocol-Version",
              in: "header",
              required: false,
              schema: { type: "string", const: "1" },
              description: "Optional for unary JSON calls.",
            },
            {
              name: "Connect-Timeout-Ms",
              in: "header",
              required: false,
              schema: { type: "string", pattern: "^[0-9]{1,10}$" },
            },
          ],
          requestBody: { required: true, content: { "application/json": { schema: typeRef(method.input) } } },
          responses,
        },
      };
    }
  }

  const taskEvent = services
    .flatMap((s) => s.methods)
    .find((m) => m.name === "WatchTask")
    ?.output.fields.find((f) => f.name === "event");
  const sseError = {
    description: "",
    content: {
      "application/json": {
        schema: {
          type: "object",
          properties: { code: { type: "string" }, message: { type: "string" }, reason: { type: "string" } },
          required: ["code", "message"],
        },
      },
    },
  };
  paths["/v1/tasks/{task_id}/events"] = {
    get: {
      operationId: "TaskEvents_Stream",
      tags: ["TaskService"],
      summary: "A task's events as Server-Sent Events.",
      description:
        "The task's events after the cursor, then live, ending after the terminal event. Each SSE event has `id:` its sequence, " +
        "`event:` its kind (`state_change`, `progress`, `delta`, `tool_call`, `input_request`, `artifact`, `log`) and `data:` the " +
        "TaskEvent as proto3 JSON; `: keep-alive` comments while idle. Resume with `Last-Event-ID` or `?after_sequence=N`. Scope: `tasks:read`.",
      parameters: [
        { name: "task_id", in: "path", required: true, schema: { type: "string" } },
        { name: "after_sequence", in: "query", required: false, schema: { type: "string", pattern: "^[0-9]+$" } },
        { name: "Last-Event-ID", in: "header", required: false, schema: { type: "string", pattern: "^[0-9]+$" } },
      ],
      responses: {
        "200": {
          description: "An event stream (text/event-stream); each `data:` line is a TaskEvent (`x-data-schema`).",
          content: {
            "text/event-stream": {
              schema: { type: "string" },
              ...(taskEvent?.message ? { "x-data-schema": typeRef(taskEvent.message) } : {}),
            },
          },
        },
        "204": { description: "The task has ended and nothing follows the cursor (EventSource stops reconnecting)." },
        "400": { ...sseError, description: "bad cursor" },
        "401": { ...sseError, description: "no or unknown key" },
        "403": { ...sseError, description: "missing scope" },
        "404": { ...sseError, description: "unknown task, or another tenant's" },
        "429": { ...sseError, description: "too many open streams (Retry-After)" },
      },
    },
  };
  if (taskEvent?.message) typeRef(taskEvent.message);
  schemas["connect.Error"] = connectError;

  return {
    openapi: "3.1.0",
    info: {
      title: opts.title,
      version: opts.version,
      description:
        "The Connect JSON form of every unary RPC (POST, `content-type: application/json`, proto3 JSON bodies) and the Server-Sent Events route. " +
        "The same API is served over gRPC, gRPC-Web and Connect binary on the same port; streaming RPCs are available there.",
    },
    security: [{ bearerAuth: [] }],
    tags: services.map((s) => ({ name: s.name, description: describe(s) ?? "" })),
    paths,
    components: {
      securitySchemes: {
        bearerAuth: {
          type: "http",
          scheme: "bearer",
          description: "An agentd API key: `authorization: Bearer agentd_…`.",
        },
      },
      schemas: Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b))),
    },
  };
}
