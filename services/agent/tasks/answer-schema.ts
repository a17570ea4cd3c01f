// The JSON Schema of an input request: checked when the agent asks (a schema
// the server cannot apply fails the task, it is the agent's bug), and applied
// to every answer (ProvideInput, Converse `input`). Schemas are compiled once
// and cached: the same question is usually asked of many tasks.
import type { JsonValue } from "@bufbuild/protobuf";
import type { FieldViolation } from "../../shared/errors.js";
import type { Json } from "../agents/agent.js";
import { createCachedSchemaCompiler } from "../agents/json-schema.js";

const compiler = createCachedSchemaCompiler(512);

/** Why the schema cannot be applied (Ajv's explanation), or undefined when it can. */
export function schemaProblem(schema: JsonValue): string | undefined {
  try {
    compiler.compile(schema as Json, "value");
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** One violation per problem of `value` (paths start at `root`); [] when it satisfies `schema`. */
export function validateAnswer(schema: JsonValue, value: JsonValue, root: string): FieldViolation[] {
  return compiler.compile(schema as Json, root)(value);
}
