import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";

/** A JSON value as a google.protobuf.Value, for request fields such as `input`. */
export function value(json: unknown): Value {
  return fromJson(ValueSchema, json as JsonValue);
}

/** A google.protobuf.Value back as plain JSON. */
export function plain<T = unknown>(v: Value | undefined): T {
  return (v ? toJson(ValueSchema, v) : undefined) as T;
}
