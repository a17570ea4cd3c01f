// JSON Schema validation with Ajv, reported as field violations a caller can act on
// (`input.items[2].name: is required`). Used by the registry for agent inputs and outputs,
// and by whoever validates answers to an input request (`value.approved: must be boolean`).
//
// Ajv runs in strict mode (https://ajv.js.org/strict-mode.html): a schema with an unknown
// keyword or format, `properties` without `type: "object"`, a `required` name missing from
// `properties`, an `if` without `then`/`else`… is rejected when it is compiled — that is, at
// startup — instead of being silently ignored at every request. Union types
// (`type: ["string", "null"]`) stay allowed: they are ordinary JSON Schema.
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from "ajv";
import { Ajv2019 } from "ajv/dist/2019.js";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { FieldViolation } from "../../shared/errors.js";
import type { Json } from "./agent.js";

// ajv-formats is CommonJS with `exports.default`; under NodeNext the default import is the
// module object, whose `.default` is the plugin (at runtime too: `module.exports.default`).
const addFormats = addFormatsModule.default;

/** Validates a value; returns one violation per problem, `[]` when the value is valid. */
export type JsonValidator = (value: unknown) => FieldViolation[];

export interface SchemaCompiler {
  /**
   * Compiles `schema` (throws an Error with Ajv's explanation when the schema is invalid).
   * `root` names the validated value in violation paths, e.g. "input" → `input.max_words`.
   */
  compile(schema: Json, root: string): JsonValidator;
}

const AJV_OPTIONS: Options = {
  allErrors: true,
  strict: true,
  allowUnionTypes: true,
  // Schemas are compiled independently; two agents may use the same `$id` without clashing.
  addUsedSchema: false,
};

type Dialect = "draft-07" | "2019-09" | "2020-12";

function dialectOf(schema: Json): Dialect {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) return "draft-07";
  const declared = schema["$schema"];
  if (declared === undefined) return "draft-07";
  if (typeof declared === "string") {
    if (declared.includes("2020-12")) return "2020-12";
    if (declared.includes("2019-09")) return "2019-09";
    if (declared.includes("draft-07")) return "draft-07";
  }
  throw new Error(`unsupported $schema ${JSON.stringify(declared)}: use draft-07 (the default), 2019-09 or 2020-12`);
}

/** Creates a compiler. Each instance owns its Ajv instances (one per JSON Schema dialect). */
export function createSchemaCompiler(): SchemaCompiler {
  const instances = new Map<Dialect, Ajv>();
  const ajvFor = (dialect: Dialect): Ajv => {
    let ajv = instances.get(dialect);
    if (!ajv) {
      ajv =
        dialect === "2020-12"
          ? new Ajv2020(AJV_OPTIONS)
          : dialect === "2019-09"
            ? new Ajv2019(AJV_OPTIONS)
            : new Ajv(AJV_OPTIONS);
      addFormats(ajv);
      instances.set(dialect, ajv);
    }
    return ajv;
  };
  return {
    compile(schema, root) {
      if (typeof schema !== "boolean" && (schema === null || typeof schema !== "object" || Array.isArray(schema))) {
        throw new Error("a JSON Schema must be an object or a boolean");
      }
      const validate: ValidateFunction = ajvFor(dialectOf(schema)).compile(schema);
      return (value) => (validate(value) ? [] : toViolations(validate.errors ?? [], value, root));
    },
  };
}

/**
 * A bounded cache in front of a compiler, for schemas that arrive at run time (input requests):
 * the same schema, by its JSON text, is compiled once. Oldest entries are evicted first.
 */
export function createCachedSchemaCompiler(maxEntries = 256): SchemaCompiler {
  const compiler = createSchemaCompiler();
  const cache = new Map<string, JsonValidator>();
  return {
    compile(schema, root) {
      const key = `${root}\u0000${JSON.stringify(schema)}`;
      const hit = cache.get(key);
      if (hit) {
        cache.delete(key);
        cache.set(key, hit);
        return hit;
      }
      const validator = compiler.compile(schema, root);
      cache.set(key, validator);
      if (cache.size > maxEntries) cache.delete(cache.keys().next().value as string);
      return validator;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Ajv errors → field violations

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function propertySegment(name: string): string {
  return IDENTIFIER.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

/**
 * Turns a JSON pointer (`/items/2/name`) into `root.items[2].name`. The value is walked along
 * the pointer, so a numeric key of an object (`{"2": …}`) is told apart from an array index.
 */
export function pointerToField(root: string, pointer: string, value: unknown): string {
  if (pointer === "") return root;
  let field = root;
  let current: unknown = value;
  for (const raw of pointer.slice(1).split("/")) {
    const segment = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(current) && /^\d+$/.test(segment)) {
      field += `[${segment}]`;
      current = current[Number(segment)];
    } else {
      field += propertySegment(segment);
      current =
        current !== null && typeof current === "object" ? (current as Record<string, unknown>)[segment] : undefined;
    }
  }
  return field;
}

function reasonOf(keyword: string): string {
  return keyword
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .toUpperCase();
}

function listOfTypes(types: string[]): string {
  const unique = [...new Set(types)];
  if (unique.length <= 1) return unique.join("");
  return `${unique.slice(0, -1).join(", ")} or ${unique[unique.length - 1]}`;
}

function typesOf(param: unknown): string[] {
  if (Array.isArray(param)) return param.map(String);
  return String(param).split(",");
}

function shortJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function describe(error: ErrorObject, branchErrors: ErrorObject[]): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "type":
      return `must be ${listOfTypes(typesOf(params["type"]))}`;
    case "enum": {
      const allowed = (params["allowedValues"] as unknown[] | undefined) ?? [];
      return allowed.length <= 10
        ? `must be one of ${allowed.map(shortJson).join(", ")}`
        : "must be one of the allowed values";
    }
    case "const":
      return `must be ${shortJson(params["allowedValue"])}`;
    case "format":
      return `must be a valid ${String(params["format"])}`;
    case "minLength":
      return params["limit"] === 1 ? "must not be empty" : `must have at least ${params["limit"]} characters`;
    case "maxLength":
      return `must have at most ${params["limit"]} characters`;
    case "minItems":
      return params["limit"] === 1 ? "must not be empty" : `must have at least ${params["limit"]} items`;
    case "maxItems":
      return `must have at most ${params["limit"]} items`;
    case "minProperties":
      return params["limit"] === 1 ? "must not be empty" : `must have at least ${params["limit"]} properties`;
    case "maxProperties":
      return `must have at most ${params["limit"]} properties`;
    case "pattern":
      return `must match the pattern ${shortJson(params["pattern"])}`;
    case "uniqueItems":
      return `must not contain duplicates (items ${params["j"]} and ${params["i"]} are equal)`;
    case "false schema":
      return "is not allowed";
    case "not":
      return 'must not match the schema given by "not"';
    case "propertyNames":
      return "is not an allowed property name";
    case "anyOf":
    case "oneOf": {
      if (error.keyword === "oneOf" && Array.isArray(params["passingSchemas"])) {
        return "must match exactly one of the allowed shapes, but matches several";
      }
      const sameSpot = branchErrors.filter((e) => e.instancePath === error.instancePath);
      if (
        branchErrors.length > 0 &&
        sameSpot.length === branchErrors.length &&
        sameSpot.every((e) => e.keyword === "type")
      ) {
        return `must be ${listOfTypes(sameSpot.flatMap((e) => typesOf((e.params as Record<string, unknown>)["type"])))}`;
      }
      return "does not match any of the allowed shapes";
    }
    default:
      // Ajv's own messages are already phrased for a field: "must be <= 5000",
      // "must be multiple of 5", "must contain at least 1 valid item(s)".
      return (error.message ?? `is invalid (${error.keyword})`).replace(/\bNOT\b/g, "not");
  }
}

function toViolations(errors: ErrorObject[], value: unknown, root: string): FieldViolation[] {
  // anyOf/oneOf report the failure of every branch, then their own summary error: keep only the
  // summary (one problem, one violation). `if` reports its `then`/`else` failures and then a
  // summary: keep only the specific failures. Errors about a property *name* (inside
  // propertyNames) are summarised by the propertyNames error.
  const composites = errors.filter((e) => e.keyword === "anyOf" || e.keyword === "oneOf");
  const branchesOf = (composite: ErrorObject): ErrorObject[] =>
    errors.filter((e) => e !== composite && e.schemaPath.startsWith(`${composite.schemaPath}/`));
  const hidden = new Set<ErrorObject>();
  for (const composite of composites) for (const e of branchesOf(composite)) hidden.add(e);

  const violations: FieldViolation[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    if (hidden.has(error) || error.keyword === "if") continue;
    if (error.propertyName !== undefined && error.keyword !== "propertyNames") continue;
    const params = error.params as Record<string, unknown>;
    let field = pointerToField(root, error.instancePath, value);
    let description: string;
    switch (error.keyword) {
      case "required":
        field += propertySegment(String(params["missingProperty"]));
        description = "is required";
        break;
      case "dependentRequired":
      case "dependencies":
        field += propertySegment(String(params["missingProperty"]));
        description = `is required when ${shortJson(params["property"])} is present`;
        break;
      case "additionalProperties":
        field += propertySegment(String(params["additionalProperty"]));
        description = "is not an allowed field";
        break;
      case "unevaluatedProperties":
        field += propertySegment(String(params["unevaluatedProperty"]));
        description = "is not an allowed field";
        break;
      case "propertyNames":
        field += propertySegment(String(params["propertyName"]));
        description = describe(error, []);
        break;
      default:
        description = describe(error, composites.includes(error) ? branchesOf(error) : []);
    }
    const key = `${field}\u0000${description}`;
    if (seen.has(key)) continue;
    seen.add(key);
    violations.push({ field, description, reason: reasonOf(error.keyword) });
  }
  return violations;
}
