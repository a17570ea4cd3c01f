// Built-in agent `validate`: checks JSON data against a JSON Schema (draft-07, 2019-09 or
// 2020-12, with formats) and reports every violation with a JSON Pointer to it. Quick enough
// for the synchronous `Run`: each distinct schema is compiled once (bounded cache).
import { type AgentDefinition, AgentFailure, type Json } from "./agent.js";
import { createSchemaCache, InvalidSchema, type Violation } from "./validate/schema-cache.js";

export interface ValidateInput {
  schema: Json;
  data?: Json;
}

export interface ValidateOutput {
  valid: boolean;
  dialect: string;
  errors: Violation[];
}

const inputSchema: Json = {
  type: "object",
  properties: {
    schema: {
      type: ["object", "boolean"],
      description:
        "The JSON Schema. draft-07 unless its $schema names 2019-09 or 2020-12; formats from ajv-formats; no remote $ref.",
    },
    data: { description: "The JSON value to check (null when omitted)." },
  },
  required: ["schema"],
  additionalProperties: false,
};

const outputSchema: Json = {
  type: "object",
  properties: {
    valid: { type: "boolean" },
    dialect: { type: "string", enum: ["draft-07", "2019-09", "2020-12"] },
    errors: {
      type: "array",
      description: "Every violation (at most 1000), in the order the validator found them.",
      items: {
        type: "object",
        properties: {
          path: { type: "string", description: "JSON Pointer to the value in data; empty for the whole document." },
          keyword: { type: "string" },
          message: { type: "string" },
          schema_path: { type: "string", description: "Where the failing keyword is in the schema." },
        },
        required: ["path", "keyword", "message", "schema_path"],
        additionalProperties: false,
      },
    },
  },
  required: ["valid", "dialect", "errors"],
  additionalProperties: false,
};

/** Creates the agent with its own compile cache (`maxSchemas` distinct schemas kept). */
export function createValidateAgent(
  opts: { maxSchemas?: number } = {},
): AgentDefinition<ValidateInput, ValidateOutput> {
  const cache = createSchemaCache({ maxEntries: opts.maxSchemas ?? 256 });
  return {
    name: "validate",
    version: "1.0.0",
    description:
      "Validates JSON data against a JSON Schema (draft-07, 2019-09 or 2020-12, with formats) and lists every " +
      "violation with a JSON Pointer to it. A schema that does not compile fails the task with INVALID_SCHEMA.",
    inputSchema,
    outputSchema,
    capabilities: ["callable"],
    async run(input, ctx) {
      ctx.signal.throwIfAborted();
      let compiled: ReturnType<typeof cache.compile>;
      try {
        compiled = cache.compile(input.schema);
      } catch (err) {
        if (!(err instanceof InvalidSchema)) throw err;
        throw new AgentFailure("INVALID_SCHEMA", `the schema does not compile: ${err.message}`, { retryable: false });
      }
      let errors: Violation[];
      try {
        errors = compiled.validate(input.data ?? null);
      } catch (err) {
        if (!(err instanceof InvalidSchema)) throw err;
        throw new AgentFailure("INVALID_SCHEMA", err.message, { retryable: false });
      }
      return { valid: errors.length === 0, dialect: compiled.dialect, errors };
    },
  };
}
