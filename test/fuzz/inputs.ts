// Generators of requests (fast-check arbitraries): shaped messages, mutations of
// them and random bytes, for every RPC in every protocol.
import { type DescMessage, fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { PROTOCOLS, RPCS, type Rpc, type WireProtocol } from "./wire.js";

export interface Payload {
  /** What is sent: for Connect JSON the JSON text's bytes, else protobuf binary (or junk). */
  bytes: Uint8Array;
  /** A short description for counterexamples. */
  kind: string;
}

export const rpcArb = fc.constantFrom(...RPCS);
export const protocolArb = fc.constantFrom(...PROTOCOLS);

/** Scalars and structures a field might get from a hostile client. */
const jsonLeaf = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(
    "",
    "0",
    "-1",
    "9223372036854775807",
    "1s",
    "-5s",
    "1.5s",
    "2024-01-01T00:00:00Z",
    "TASK_STATE_RUNNING",
    "simulate",
    "summarize",
    "x".repeat(300),
  ),
);
const jsonAny: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 3, arbitrary: jsonLeaf as fc.Arbitrary<JsonValue> },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue> },
);

/** A JSON object over the input message's own field names (so it gets past the decoder), with hostile values. */
export function jsonFor(input: DescMessage): fc.Arbitrary<Record<string, JsonValue>> {
  const names = input.fields.map((f) => f.jsonName);
  return fc.dictionary(names.length > 0 ? fc.constantFrom(...names) : fc.string({ maxLength: 8 }), jsonAny, {
    maxKeys: 4,
  });
}

/** A payload for this RPC in this protocol: field-shaped JSON/binary, mutated binary, or plain junk. */
export function payloadArb(rpc: Rpc, protocol: WireProtocol): fc.Arbitrary<Payload> {
  const json = jsonFor(rpc.input);
  const shaped: fc.Arbitrary<Payload> = json.map((value) => {
    if (protocol === "connect-json")
      return { bytes: Buffer.from(JSON.stringify(value)), kind: `json ${JSON.stringify(value).slice(0, 200)}` };
    try {
      const message = fromJson(rpc.input, value, { ignoreUnknownFields: true });
      return { bytes: toBinary(rpc.input, message), kind: `binary of ${JSON.stringify(value).slice(0, 200)}` };
    } catch {
      return { bytes: Buffer.from(JSON.stringify(value)), kind: "json text as binary" };
    }
  });
  const mutated: fc.Arbitrary<Payload> = fc
    .tuple(shaped, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }))
    .map(([p, flips]) => {
      const bytes = Buffer.from(p.bytes);
      for (const [at, value] of flips) if (bytes.length > 0) bytes[at % bytes.length] = value;
      return { bytes, kind: `mutated ${p.kind}` };
    });
  const junk: fc.Arbitrary<Payload> = fc
    .uint8Array({ maxLength: 512 })
    .map((bytes) => ({ bytes, kind: "random bytes" }));
  return fc.oneof({ weight: 3, arbitrary: shaped }, { weight: 2, arbitrary: mutated }, { weight: 1, arbitrary: junk });
}

/** Interesting values for a header, hostile ones included. */
const headerValue = fc.oneof(
  fc.string({ maxLength: 30 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
  fc.constantFrom(
    "",
    "gzip",
    "br",
    "identity",
    "deflate",
    "zstd",
    "1",
    "0",
    "-1",
    "99999999999",
    "1S",
    "0m",
    "xyz",
    "trailers",
    "Bearer ",
    "Bearer x",
    "application/json",
    "application/proto",
    "application/grpc",
    "application/grpc-web-text",
    "text/plain",
    "application/connect+json",
  ),
);
export const headerArb = fc.dictionary(
  fc.constantFrom(
    "content-type",
    "content-encoding",
    "connect-content-encoding",
    "connect-accept-encoding",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-timeout",
    "connect-timeout-ms",
    "connect-protocol-version",
    "authorization",
    "x-request-id",
    "last-event-id",
    "te",
    "accept",
    "x-grpc-web",
    "x-user-agent",
  ),
  headerValue,
  { maxKeys: 4 },
);

/** Paths a client could send: real RPCs and routes, their near misses, and junk. */
export const pathArb = fc.oneof(
  rpcArb.map((r) => r.path),
  fc.constantFrom(
    "/",
    "//",
    "///",
    "*",
    "/metrics",
    "/v1/tasks//events",
    "/v1/tasks/%ZZ/events",
    "/v1/tasks/%/events",
    "/v1/tasks/%E0%A4%A/events",
    "/v1/tasks/..%2F..%2Fetc/events",
    "/v1/tasks/0190f9a4-1111-7000-8000-000000000000/events?after_sequence=-1",
    "/v1/tasks/0190f9a4-1111-7000-8000-000000000000/events?after_sequence=99999999999999999999",
    "/grpc.health.v1.Health/",
    "/agentd.v1.TaskService/",
    "/agentd.v1.TaskService/GetTask/extra",
    "http://example.com/grpc.health.v1.Health/Check",
  ),
  fc.string({ maxLength: 60 }).map((s) => `/${encodeURI(s)}`),
  fc.string({ maxLength: 40 }).map((s) => `/v1/tasks/${s.replace(/[^\x21-\x7e]/g, "%")}/events`),
);

export const methodArb = fc.constantFrom(
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "HEAD",
  "TRACE",
  "BREW",
  "post",
);

/** The HTTP routes of the one port besides the RPCs, as a client would name them. */
export function routePaths(taskIds: string[], files: string[] = []): string[] {
  return [
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/docs/",
    "/docs/init.js",
    "/docs/swagger-ui.css",
    "/docs/swagger-ui-bundle.js",
    "/docs/swagger-ui-standalone-preset.js",
    "/",
    "/index.html",
    "/favicon.svg",
    "/assets/",
    "/assets/index.js",
    "/metrics",
    ...files,
    ...taskIds.flatMap((id) => [`/v1/tasks/${id}/events`, `/v1/tasks/${id}/events/`]),
  ];
}

/** Hostile ways to write a path: percent-encoding (valid, malformed, of separators), dot segments, queries. */
const pathMutation = fc.oneof(
  { weight: 3, arbitrary: fc.constant((p: string) => p) },
  fc.constantFrom(
    (p: string) => p.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`), // "/%68ealthz"
    (p: string) => p.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    (p: string) => p.replaceAll("/", "%2F"),
    (p: string) => p.replaceAll("/", "%2f"),
    (p: string) => `/${p}`,
    (p: string) => `${p}/`,
    (p: string) => `${p}//`,
    (p: string) => `${p}/..`,
    (p: string) => `${p}/.`,
    (p: string) => `/x/..${p}`,
    (p: string) => `/.${p}`,
    (p: string) => `${p}%`,
    (p: string) => `${p}%ZZ`,
    (p: string) => `${p}%00`,
    (p: string) => `${p}%C0%AE%C0%AE`,
    (p: string) => `${p}%ED%A0%80`,
    (p: string) => p.toUpperCase(),
    (p: string) => `${p};jsessionid=1`,
    (p: string) => `${p}#frag`,
    (p: string) => `${p}\\..\\x`,
    // The segment before the last (a task id in the SSE route), malformed or traversing.
    (p: string) => p.replace(/[^/]+(?=\/[^/]*$)/, (seg) => `${seg}%ZZ`),
    (p: string) => p.replace(/[^/]+(?=\/[^/]*$)/, "%"),
    (p: string) => p.replace(/[^/]+(?=\/[^/]*$)/, "%E0%A4%A"),
    (p: string) => p.replace(/[^/]+(?=\/[^/]*$)/, "%00"),
    (p: string) => p.replace(/[^/]+(?=\/[^/]*$)/, "..%2F..%2Fetc"),
    (p: string) => p.replace(/[^/]+(?=\/[^/]*$)/, (seg) => encodeURIComponent(encodeURIComponent(seg))),
  ),
  fc
    .string({ maxLength: 30 })
    .map((s) => (p: string) => `${p}/${s.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c).slice(0, 3))}`),
);

/** Hostile query strings, the SSE route's `after_sequence` among them. */
const queryArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant("") },
  fc.constantFrom(
    "?",
    "??",
    "?after_sequence=",
    "?after_sequence=0",
    "?after_sequence=3",
    "?after_sequence=-1",
    "?after_sequence=1e3",
    "?after_sequence=0x10",
    "?after_sequence=99999999999999999999",
    "?after_sequence=9223372036854775808",
    "?after_sequence=%ZZ",
    "?after_sequence=1&after_sequence=2",
    "?%ZZ",
    "?a=%00",
    "?&&&=",
  ),
  fc.string({ maxLength: 30 }).map((s) => `?${s.replace(/[^\x21-\x7e]/g, "%").replaceAll("#", "%23")}`),
);

/** A route of the one port, written as a hostile client might. */
export function routeArb(taskIds: string[], files: string[] = []): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom(...routePaths(taskIds, files)), pathMutation, queryArb)
    .map(([path, mutate, query]) => `${mutate(path)}${query}`);
}

/** Headers that matter to static files, probes and SSE, beside the RPC headers. */
export const routeHeaderArb = fc
  .tuple(
    headerArb,
    fc.dictionary(
      fc.constantFrom(
        "range",
        "if-none-match",
        "if-modified-since",
        "accept-encoding",
        "origin",
        "cookie",
        "last-event-id",
        "cache-control",
        "accept",
      ),
      fc.oneof(
        headerValue,
        fc.constantFrom(
          "bytes=0-0",
          "bytes=-1",
          "bytes=99999999999-",
          "*",
          'W/"x"',
          "Thu, 01 Jan 1970 00:00:00 GMT",
          "not a date",
          "gzip, br;q=0",
          "null",
          "text/event-stream",
          "-1",
          "99999999999999999999",
          "%ZZ",
        ),
      ),
      { maxKeys: 3 },
    ),
  )
  .map(([a, b]) => ({ ...a, ...b }));
