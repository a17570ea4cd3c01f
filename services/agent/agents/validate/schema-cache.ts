// Compiling caller-supplied JSON Schemas for the `validate` agent: draft-07 (the default),
// 2019-09 or 2020-12 by `$schema`, formats from ajv-formats, every violation reported.
// Compiled validators are kept in a bounded LRU keyed by a hash of the schema's canonical
// JSON, so a schema sent with every Run is compiled once. Ajv also keeps each compiled schema
// in its own cache, keyed by the schema object; an evicted entry is removed from Ajv too, or
// memory would grow with every distinct schema ever seen.
import { createHash } from "node:crypto";
import { Ajv, type AnySchema, type ErrorObject, type Options, type ValidateFunction } from "ajv";
import { Ajv2019 } from "ajv/dist/2019.js";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";

// ajv-formats is CommonJS with `exports.default` (see json-schema.ts).
const addFormats = addFormatsModule.default;

type Dialect = "draft-07" | "2019-09" | "2020-12";

/** A schema that cannot be compiled; `message` is the compiler's explanation. */
export class InvalidSchema extends Error {
  override name = "InvalidSchema";
}

export interface Violation {
  /** JSON Pointer (RFC 6901) to the offending value in `data`; "" is the whole document. */
  path: string;
  /** The schema keyword that failed, e.g. "required", "format", "unevaluatedProperties". */
  keyword: string;
  message: string;
  /** JSON Pointer fragment of the failing keyword in the schema, e.g. "#/properties/age/minimum". */
  schema_path: string;
}

interface CompiledSchema {
  dialect: Dialect;
  /** Every violation (`allErrors`), at most `maxErrors`; `[]` when `data` is valid. Throws
   * {@link InvalidSchema} when the schema recurses without end on `data`. */
  validate(data: unknown): Violation[];
}

export interface SchemaCache {
  /** Compiles (or finds) `schema`; throws {@link InvalidSchema} when it does not compile. */
  compile(schema: unknown): CompiledSchema;
  /** Entries now cached. */
  size(): number;
}

/** JSON with object keys sorted, so equal schemas hash equally whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value as object).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

function dialectOf(schema: unknown): Dialect {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) return "draft-07";
  const declared = (schema as Record<string, unknown>)["$schema"];
  if (declared === undefined) return "draft-07";
  if (typeof declared === "string") {
    if (declared.includes("/2020-12/")) return "2020-12";
    if (declared.includes("/2019-09/")) return "2019-09";
    if (declared.includes("draft-07")) return "draft-07";
  }
  throw new InvalidSchema(
    `unsupported $schema ${JSON.stringify(declared)}: use draft-07 (the default), 2019-09 or 2020-12`,
  );
}

function toViolation(error: ErrorObject): Violation {
  return {
    path: error.instancePath,
    keyword: error.keyword,
    message: error.message ?? `fails ${error.keyword}`,
    schema_path: error.schemaPath,
  };
}

export function createSchemaCache(opts: { maxEntries?: number; maxErrors?: number } = {}): SchemaCache {
  const maxEntries = opts.maxEntries ?? 256;
  const maxErrors = opts.maxErrors ?? 1000;
  // Warnings Ajv logs while compiling: an unknown format is only a warning outside strict mode,
  // but a schema that names a format we cannot check would silently accept anything, so it is
  // reported as an invalid schema. Unknown keywords stay allowed (the spec treats them as annotations).
  let warnings: string[] = [];
  const logger = {
    log() {},
    warn(...args: unknown[]) {
      warnings.push(args.map(String).join(" "));
    },
    error() {},
  };
  const options: Options = {
    allErrors: true,
    strict: false,
    strictSchema: "log",
    allowUnionTypes: true,
    addUsedSchema: false,
    logger,
  };
  const instances = new Map<Dialect, Ajv>();
  const ajvFor = (dialect: Dialect): Ajv => {
    let ajv = instances.get(dialect);
    if (!ajv) {
      ajv =
        dialect === "2020-12" ? new Ajv2020(options) : dialect === "2019-09" ? new Ajv2019(options) : new Ajv(options);
      addFormats(ajv);
      instances.set(dialect, ajv);
    }
    return ajv;
  };
  const cache = new Map<string, { compiled: CompiledSchema; schema: AnySchema; ajv: Ajv }>();

  return {
    compile(schema) {
      if (typeof schema !== "boolean" && (schema === null || typeof schema !== "object" || Array.isArray(schema))) {
        throw new InvalidSchema("a JSON Schema must be an object or a boolean");
      }
      const key = createHash("sha256").update(canonical(schema)).digest("hex");
      const hit = cache.get(key);
      if (hit) {
        cache.delete(key);
        cache.set(key, hit);
        return hit.compiled;
      }
      const dialect = dialectOf(schema);
      const ajv = ajvFor(dialect);
      // Our own copy: the caller's object may be mutated later, and Ajv's cache is keyed by identity.
      const own = structuredClone(schema) as AnySchema;
      let validate: ValidateFunction;
      warnings = [];
      // Ajv finds a root without $id (the target of `$ref: "#"`, as in recursive tree schemas)
      // only under the key "" of its registry, which addUsedSchema: false leaves empty. Such a
      // root is registered there for its compilation and the key cleared after; schemas with
      // a $id stay out of the registry, so two callers' schemas may share one.
      const rootless = typeof own === "object" && typeof (own as { $id?: unknown }).$id !== "string";
      ajv.opts.addUsedSchema = rootless;
      try {
        validate = ajv.compile(own);
      } catch (err) {
        ajv.removeSchema(own);
        throw new InvalidSchema(err instanceof Error ? err.message : String(err), { cause: err });
      } finally {
        ajv.opts.addUsedSchema = false;
        delete ajv.refs[""];
      }
      const unknownFormat = warnings.find((w) => w.includes("unknown format"));
      if (unknownFormat) {
        ajv.removeSchema(own);
        throw new InvalidSchema(unknownFormat);
      }
      const compiled: CompiledSchema = {
        dialect,
        validate(data) {
          try {
            if (validate(data)) return [];
          } catch (err) {
            // A schema that refers to itself without consuming data (`{"$ref": "#"}` at the root)
            // recurses for ever: that is the schema's fault, not the data's nor ours.
            if (err instanceof RangeError) {
              throw new InvalidSchema("the schema refers to itself without end (validation recursed too deeply)", {
                cause: err,
              });
            }
            throw err;
          }
          return (validate.errors ?? []).slice(0, maxErrors).map(toViolation);
        },
      };
      cache.set(key, { compiled, schema: own, ajv });
      if (cache.size > maxEntries) {
        const oldest = cache.keys().next().value as string;
        const evicted = cache.get(oldest)!;
        cache.delete(oldest);
        evicted.ajv.removeSchema(evicted.schema);
      }
      return compiled;
    },
    size: () => cache.size,
  };
}
