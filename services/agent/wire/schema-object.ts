// A JSON Schema in a Struct field (an agent card's input and output schemas,
// `InputRequest.schema`): Struct holds objects only, so the boolean schemas
// become their object forms.
import type { JsonObject } from "@bufbuild/protobuf";

/** `true` (anything) is `{}`, `false` (nothing) is `{not: {}}`; an object schema is itself. */
export function schemaObject(schema: unknown): JsonObject {
  if (schema === true) return {};
  if (schema === false) return { not: {} };
  return schema as JsonObject;
}
