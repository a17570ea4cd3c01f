// The set of agents a service offers: built-in ones plus user modules. Every schema is
// compiled once, here, so a broken agent stops the service at startup with a message that
// names it, instead of failing requests later.
import { readdir, readFile, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { FieldViolation } from "../../shared/errors.js";
import { AGENT_CAPABILITIES, type AgentDefinition } from "./agent.js";
import { createSchemaCompiler, type JsonValidator } from "./json-schema.js";

export interface AgentRegistry {
  /** Every agent version, sorted by name, then newest version first. */
  list(): AgentDefinition[];
  /**
   * Finds an agent by `ref`: `name` (its highest semantic version) or `name@version` (exactly
   * that version). `undefined` when there is no such agent or version.
   */
  get(ref: string): AgentDefinition | undefined;
  /**
   * Checks `input` against the agent's input schema: one violation per problem, with paths like
   * `input.max_words`, `input.items[2].name`; `[]` when valid. Throws for an unknown agent.
   */
  validateInput(ref: string, input: unknown): FieldViolation[];
  /** Checks a result against the agent's output schema (paths start at `output`). */
  validateOutput(ref: string, output: unknown): FieldViolation[];
}

interface Entry {
  definition: AgentDefinition;
  input: JsonValidator;
  output: JsonValidator;
}

/** Splits `name@version` (no `@`: the version is undefined). */
function parseAgentRef(ref: string): { name: string; version: string | undefined } {
  const at = ref.indexOf("@");
  return at < 0 ? { name: ref, version: undefined } : { name: ref.slice(0, at), version: ref.slice(at + 1) };
}

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

/** Orders semantic versions (build metadata ignored; a pre-release sorts before its release). */
function compareVersions(a: string, b: string): number {
  const pa = SEMVER.exec(a);
  const pb = SEMVER.exec(b);
  if (!pa || !pb) return a < b ? -1 : a > b ? 1 : 0;
  for (let i = 1; i <= 3; i++) {
    const d = Number(pa[i]) - Number(pb[i]);
    if (d !== 0) return d;
  }
  const [ra, rb] = [pa[4], pb[4]];
  if (ra === rb) return 0;
  if (ra === undefined) return 1;
  if (rb === undefined) return -1;
  const xa = ra.split(".");
  const xb = rb.split(".");
  for (let i = 0; i < Math.max(xa.length, xb.length); i++) {
    const [sa, sb] = [xa[i], xb[i]];
    if (sa === undefined) return -1;
    if (sb === undefined) return 1;
    const [na, nb] = [/^\d+$/.test(sa), /^\d+$/.test(sb)];
    if (na && nb && Number(sa) !== Number(sb)) return Number(sa) - Number(sb);
    if (na !== nb) return na ? -1 : 1;
    if (sa !== sb) return sa < sb ? -1 : 1;
  }
  return 0;
}

/**
 * Builds the registry. Several versions of one agent may be registered; the same name and
 * version twice is an error. Throws when a definition is malformed, or when a schema is not valid
 * under Ajv's strict mode — each message names the agent.
 */
export function createAgentRegistry(definitions: AgentDefinition[]): AgentRegistry {
  const compiler = createSchemaCompiler();
  const entries = new Map<string, Entry>();
  const versions = new Map<string, string[]>();
  for (const definition of definitions) {
    assertAgentDefinition(definition, "agent definition");
    const ref = `${definition.name}@${definition.version}`;
    if (entries.has(ref)) {
      throw new Error(`duplicate agent "${ref}": each agent needs a unique name and version`);
    }
    const compile = (which: "inputSchema" | "outputSchema", root: string): JsonValidator => {
      try {
        return compiler.compile(definition[which], root);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new Error(`agent "${definition.name}": ${which} is not a valid JSON Schema: ${why}`, { cause: err });
      }
    };
    entries.set(ref, {
      definition,
      input: compile("inputSchema", "input"),
      output: compile("outputSchema", "output"),
    });
    versions.set(definition.name, [...(versions.get(definition.name) ?? []), definition.version]);
  }
  for (const list of versions.values()) list.sort((a, b) => compareVersions(b, a));
  const sorted = [...versions.keys()]
    .sort()
    .flatMap((name) => versions.get(name)!.map((v) => entries.get(`${name}@${v}`)!.definition));
  const find = (ref: string): Entry | undefined => {
    const { name, version } = parseAgentRef(ref);
    const v = version ?? versions.get(name)?.[0];
    return v === undefined ? undefined : entries.get(`${name}@${v}`);
  };
  const entry = (ref: string): Entry => {
    const found = find(ref);
    if (!found) throw new Error(`unknown agent "${ref}"`);
    return found;
  };
  return {
    list: () => [...sorted],
    get: (ref) => find(ref)?.definition,
    validateInput: (ref, input) => entry(ref).input(input),
    validateOutput: (ref, output) => entry(ref).output(output),
  };
}

const NAME = /^[a-z][a-z0-9._-]{0,63}$/;

/**
 * Throws unless `value` has the shape of an {@link AgentDefinition}. `where` starts the message
 * (e.g. `agent module /abs/path.ts: default export[1]`).
 */
function assertAgentDefinition(value: unknown, where: string): asserts value is AgentDefinition {
  const fail = (problem: string): never => {
    throw new Error(`${where}: ${problem}`);
  };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    fail("must be an object with name, version, description, inputSchema, outputSchema and run");
  }
  const v = value as Record<string, unknown>;
  const label = typeof v["name"] === "string" ? `agent "${v["name"]}"` : "the agent";
  if (typeof v["name"] !== "string" || !NAME.test(v["name"])) {
    fail(
      `name must be 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter (got ${JSON.stringify(v["name"]) ?? "undefined"})`,
    );
  }
  for (const key of ["version", "description"] as const) {
    if (typeof v[key] !== "string" || v[key].trim() === "") fail(`${label}: ${key} must be a non-empty string`);
  }
  if (!SEMVER.test(v["version"] as string)) {
    fail(`${label}: version must be a semantic version like 1.2.0 (got ${JSON.stringify(v["version"])})`);
  }
  if (v["unavailableReason"] !== undefined && typeof v["unavailableReason"] !== "string") {
    fail(`${label}: unavailableReason must be a string when given`);
  }
  for (const key of ["inputSchema", "outputSchema"] as const) {
    const schema = v[key];
    const isObject = schema !== null && typeof schema === "object" && !Array.isArray(schema);
    if (!isObject && typeof schema !== "boolean")
      fail(`${label}: ${key} must be a JSON Schema (an object or a boolean)`);
  }
  if (typeof v["run"] !== "function") fail(`${label}: run must be a function (input, ctx) => Promise<output>`);
  const capabilities = v["capabilities"];
  if (capabilities !== undefined) {
    if (!Array.isArray(capabilities)) fail(`${label}: capabilities must be an array of strings`);
    for (const c of capabilities as unknown[]) {
      if (typeof c !== "string" || !(AGENT_CAPABILITIES as readonly string[]).includes(c)) {
        fail(`${label}: unknown capability ${JSON.stringify(c)} (known: ${AGENT_CAPABILITIES.join(", ")})`);
      }
    }
  }
}

const MODULE_EXTENSIONS = new Set([".js", ".mjs", ".cjs", ".ts", ".mts", ".cts"]);

/**
 * What `--agents` entries name, expanded to module files:
 * - a file (`./agents/greet.ts`);
 * - a folder: its package entry when it holds a package.json with `exports`/`main`, otherwise
 *   every module file directly in it (tests, `.d.ts` and dotfiles skipped), sorted;
 * - a package name (`my-agents`, `@me/agents`), resolved from the working directory's node_modules.
 */
export async function resolveAgentPaths(entries: string[], cwd = process.cwd()): Promise<string[]> {
  const files: string[] = [];
  for (const entry of entries) {
    const path = resolve(cwd, entry);
    const info = await stat(path).catch(() => undefined);
    const looksLikePath = entry.startsWith(".") || entry.startsWith("/") || /^[A-Za-z]:[\\/]/.test(entry);
    if (info?.isDirectory()) {
      const main = await packageEntry(path);
      if (main) {
        files.push(main);
        continue;
      }
      const names = (await readdir(path)).filter(
        (n) =>
          MODULE_EXTENSIONS.has(extname(n)) &&
          !n.startsWith(".") &&
          !/\.(test|spec)\.[cm]?[jt]s$/.test(n) &&
          !/\.d\.[cm]?ts$/.test(n),
      );
      if (names.length === 0)
        throw new Error(`agent folder ${path}: holds no .js, .mjs, .cjs, .ts, .mts or .cts modules`);
      files.push(...names.sort().map((n) => join(path, n)));
    } else if (info || looksLikePath) {
      files.push(path);
    } else {
      try {
        files.push(createRequire(join(cwd, "noop.js")).resolve(entry));
      } catch (err) {
        throw new Error(`agent package "${entry}": not found from ${cwd} (install it, or give a path)`, { cause: err });
      }
    }
  }
  return files;
}

/** The file a folder's package.json points at (exports "." import/default, then main), if any. */
async function packageEntry(dir: string): Promise<string | undefined> {
  const text = await readFile(join(dir, "package.json"), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  const pkg = JSON.parse(text) as { exports?: unknown; main?: unknown };
  let target: unknown = pkg.exports;
  if (target && typeof target === "object" && "." in target) target = (target as Record<string, unknown>)["."];
  while (target && typeof target === "object" && !Array.isArray(target)) {
    const conditions = target as Record<string, unknown>;
    target = conditions["import"] ?? conditions["node"] ?? conditions["default"];
  }
  if (typeof target === "string") return resolve(dir, target);
  return typeof pkg.main === "string" ? resolve(dir, pkg.main) : undefined;
}

/**
 * Imports user agent modules. Each entry is a file, a folder or a package name (see
 * {@link resolveAgentPaths}); a file is `.js`/`.mjs`/`.cjs`, or `.ts`/`.mts`/`.cts` when the
 * process runs under tsx (as the `agentd` CLI does). A module's default export is an
 * {@link AgentDefinition} or an array of them. Throws, naming the file, when a file is missing,
 * fails to load, or exports something else. Definitions are returned in the order found; pass
 * them with the built-in ones to {@link createAgentRegistry}, which rejects duplicates and bad schemas.
 */
export async function loadAgentModules(entries: string[]): Promise<AgentDefinition[]> {
  const definitions: AgentDefinition[] = [];
  for (const file of await resolveAgentPaths(entries)) {
    const where = `agent module ${file}`;
    if (!MODULE_EXTENSIONS.has(extname(file))) {
      throw new Error(`${where}: unsupported file type "${extname(file)}" (use .js, .mjs, .cjs, .ts, .mts or .cts)`);
    }
    try {
      if (!(await stat(file)).isFile()) throw new Error("not a file");
    } catch (err) {
      throw new Error(`${where}: not found`, { cause: err });
    }
    let loaded: Record<string, unknown>;
    try {
      loaded = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    } catch (err) {
      let why = err instanceof Error ? err.message : String(err);
      if ((err as { code?: unknown } | null)?.code === "ERR_UNKNOWN_FILE_EXTENSION") {
        why += " (TypeScript modules need the process to run under tsx, as the agentd CLI does)";
      }
      throw new Error(`${where}: failed to load: ${why}`, { cause: err });
    }
    const exported = loaded["default"];
    if (exported === undefined) {
      throw new Error(`${where}: has no default export (export default an agent definition or an array of them)`);
    }
    if (Array.isArray(exported)) {
      if (exported.length === 0) throw new Error(`${where}: default export is an empty array`);
      exported.forEach((item, i) => {
        assertAgentDefinition(item, `${where}: default export[${i}]`);
        definitions.push(item);
      });
    } else {
      assertAgentDefinition(exported, `${where}: default export`);
      definitions.push(exported);
    }
    // Compile the module's schemas now, so a bad one is reported with the file that holds it.
    try {
      createAgentRegistry(Array.isArray(exported) ? (exported as AgentDefinition[]) : [exported]);
    } catch (err) {
      throw new Error(`${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  return definitions;
}
