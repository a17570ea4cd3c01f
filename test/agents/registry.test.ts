import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentDefinition, Json } from "../../services/agent/agents/agent.js";
import { builtinAgents } from "../../services/agent/agents/builtin.js";
import { createCachedSchemaCompiler, pointerToField } from "../../services/agent/agents/json-schema.js";
import { createAgentRegistry, loadAgentModules, resolveAgentPaths } from "../../services/agent/agents/registry.js";
import { createFakeContext } from "./fake-context.js";

function agent(name: string, inputSchema: Json, outputSchema: Json = true): AgentDefinition {
  return {
    name,
    version: "1.0.0",
    description: `test agent ${name}`,
    inputSchema,
    outputSchema,
    async run() {
      return null;
    },
  };
}

const orderSchema: Json = {
  type: "object",
  properties: {
    customer: { type: "string", format: "email" },
    items: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        properties: { name: { type: "string", minLength: 1 }, qty: { type: "integer", minimum: 1 } },
        required: ["name"],
        additionalProperties: false,
      },
    },
    notes: { type: "object", additionalProperties: { type: "string" } },
    priority: { enum: ["low", "high"] },
    ref: { anyOf: [{ type: "string" }, { type: "integer" }] },
  },
  required: ["customer", "items"],
  additionalProperties: false,
};

describe("createAgentRegistry", () => {
  const registry = createAgentRegistry([agent("orders", orderSchema), ...builtinAgents(), agent("alpha", true)]);

  it("lists agents sorted by name and finds them by name", () => {
    expect(registry.list().map((a) => a.name)).toEqual([
      "alpha",
      "analyze-document",
      "chat",
      "orders",
      "simulate",
      "summarize",
      "validate",
    ]);
    expect(registry.get("summarize")?.version).toBe("1.0.0");
    expect(registry.get("nope")).toBeUndefined();
    expect(() => registry.validateInput("nope", {})).toThrow('unknown agent "nope"');
  });

  it("accepts a valid input", () => {
    expect(
      registry.validateInput("orders", { customer: "a@example.com", items: [{ name: "tea", qty: 2 }], ref: 7 }),
    ).toEqual([]);
  });

  it("reports one violation per problem, with readable paths", () => {
    const input = {
      customer: "not-an-email",
      items: [{ name: "tea" }, { name: 5, qty: 0 }, { qty: 1 }],
      notes: { "gift wrap": 1, 2: "ok" },
      priority: "urgent",
      ref: true,
      extra: 1,
    };
    expect(registry.validateInput("orders", input)).toEqual([
      { field: "input.extra", description: "is not an allowed field", reason: "ADDITIONAL_PROPERTIES" },
      { field: "input.customer", description: "must be a valid email", reason: "FORMAT" },
      { field: "input.items[1].name", description: "must be string", reason: "TYPE" },
      { field: "input.items[1].qty", description: "must be >= 1", reason: "MINIMUM" },
      { field: "input.items[2].name", description: "is required", reason: "REQUIRED" },
      { field: 'input.notes["gift wrap"]', description: "must be string", reason: "TYPE" },
      { field: "input.priority", description: 'must be one of "low", "high"', reason: "ENUM" },
      { field: "input.ref", description: "must be string or integer", reason: "ANY_OF" },
    ]);
  });

  it("names missing required properties", () => {
    expect(registry.validateInput("orders", {})).toEqual([
      { field: "input.customer", description: "is required", reason: "REQUIRED" },
      { field: "input.items", description: "is required", reason: "REQUIRED" },
    ]);
    expect(registry.validateInput("summarize", { max_words: 10 })).toEqual([
      { field: "input.text", description: "is required", reason: "REQUIRED" },
    ]);
  });

  it("reports a wrong top-level type at the root", () => {
    expect(registry.validateInput("orders", [1])).toEqual([
      { field: "input", description: "must be object", reason: "TYPE" },
    ]);
    expect(registry.validateInput("orders", { customer: "a@b.co", items: [] })).toEqual([
      { field: "input.items", description: "must not be empty", reason: "MIN_ITEMS" },
    ]);
  });

  it("validates outputs with paths under output", () => {
    expect(registry.validateOutput("summarize", { summary: 1 })).toEqual([
      { field: "output.sentences", description: "is required", reason: "REQUIRED" },
      { field: "output.word_count", description: "is required", reason: "REQUIRED" },
      { field: "output.source_sentences", description: "is required", reason: "REQUIRED" },
      { field: "output.source_words", description: "is required", reason: "REQUIRED" },
      { field: "output.summary", description: "must be string", reason: "TYPE" },
    ]);
    expect(registry.validateOutput("alpha", { anything: [1, 2] })).toEqual([]);
  });

  it("understands 2020-12 schemas and lets two agents share an $id", () => {
    const tuple: Json = {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: "https://example.com/point",
      type: "array",
      prefixItems: [{ type: "number" }, { type: "number" }],
      minItems: 2,
      items: false,
    };
    const r = createAgentRegistry([agent("p1", tuple), agent("p2", tuple)]);
    expect(r.validateInput("p1", [1, 2])).toEqual([]);
    expect(r.validateInput("p2", [1, "2", 3])).toEqual([
      { field: "input[1]", description: "must be number", reason: "TYPE" },
      { field: "input", description: "must not have more than 2 items", reason: "ITEMS" },
    ]);
  });

  it("rejects the same name and version twice", () => {
    expect(() => createAgentRegistry([agent("twice", true), agent("twice", true)])).toThrow(
      'duplicate agent "twice@1.0.0"',
    );
  });

  it("serves several versions of one agent: name@version exactly, name alone the highest semver", () => {
    const v = (version: string) => ({ ...agent("multi", true), version });
    const multi = createAgentRegistry([v("1.2.0"), v("1.10.0"), v("1.10.0-beta.1"), v("0.9.9")]);
    expect(multi.list().map((a) => a.version)).toEqual(["1.10.0", "1.10.0-beta.1", "1.2.0", "0.9.9"]);
    expect(multi.get("multi")?.version).toBe("1.10.0");
    expect(multi.get("multi@1.2.0")?.version).toBe("1.2.0");
    expect(multi.get("multi@2.0.0")).toBeUndefined();
    expect(() => createAgentRegistry([v("1")])).toThrow('agent "multi": version must be a semantic version like 1.2.0');
  });

  it.each([
    [
      "an unknown keyword",
      { type: "object", properties: { a: { type: "string" } }, requird: ["a"] },
      /unknown keyword: "requird"/,
    ],
    ["properties without a type", { properties: { a: { type: "string" } } }, /strict mode/],
    [
      "a required property that is not defined",
      { type: "object", required: ["a"] },
      /required property "a" is not defined/,
    ],
    ["an unknown format", { type: "string", format: "postcode" }, /unknown format "postcode"/],
    ["a wrong keyword value", { type: "strung" }, /schema is invalid/],
    ["an unsupported dialect", { $schema: "http://json-schema.org/draft-04/schema#" }, /unsupported \$schema/],
  ])("rejects %s at creation, naming the agent", (_, schema, why) => {
    const create = () => createAgentRegistry([agent("fine", true), agent("broken", schema as Json)]);
    expect(create).toThrow(/^agent "broken": inputSchema is not a valid JSON Schema: /);
    expect(create).toThrow(why);
  });

  it("rejects malformed definitions", () => {
    const bad = (patch: Record<string, unknown>) => () =>
      createAgentRegistry([{ ...agent("x", true), ...patch } as unknown as AgentDefinition]);
    expect(bad({ name: "Bad Name" })).toThrow(/name must be/);
    expect(bad({ version: "" })).toThrow('agent "x": version must be a non-empty string');
    expect(bad({ run: undefined })).toThrow('agent "x": run must be a function');
    expect(bad({ inputSchema: "string" })).toThrow('agent "x": inputSchema must be a JSON Schema');
    expect(bad({ capabilities: ["telepathy"] })).toThrow('unknown capability "telepathy"');
  });
});

describe("schema helpers", () => {
  it("turns JSON pointers into field paths, telling indexes from numeric keys", () => {
    const value = { list: [{ "a/b": { "0": 1 } }] };
    expect(pointerToField("value", "", value)).toBe("value");
    expect(pointerToField("value", "/list/0/a~1b/0", value)).toBe('value.list[0]["a/b"]["0"]');
  });

  it("compiles a run-time schema once and reuses it", () => {
    const compiler = createCachedSchemaCompiler(2);
    const schema: Json = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] };
    const first = compiler.compile(schema, "value");
    expect(compiler.compile(JSON.parse(JSON.stringify(schema)), "value")).toBe(first);
    expect(first({ ok: "yes" })).toEqual([{ field: "value.ok", description: "must be boolean", reason: "TYPE" }]);
    expect(() => compiler.compile({ type: "object", nope: 1 }, "value")).toThrow(/unknown keyword/);
  });
});

describe("loadAgentModules", () => {
  let dir: string;
  const moduleSource = (names: string[]) => {
    const defs = names.map(
      (name) => `{
        name: ${JSON.stringify(name)},
        version: "0.1.0",
        description: "echoes its input",
        inputSchema: { type: "object" },
        outputSchema: { type: "object" },
        capabilities: ["streaming"],
        async run(input, ctx) { ctx.delta("echo"); return { echoed: input }; },
      }`,
    );
    return `export default ${names.length === 1 ? defs[0] : `[${defs.join(",")}]`};\n`;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentd-agents-"));
    await writeFile(join(dir, "echo.mjs"), moduleSource(["echo"]));
    await writeFile(join(dir, "pair.js"), moduleSource(["first", "second"]));
    await writeFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    await writeFile(
      join(dir, "typed.ts"),
      `interface In { n: number }\nexport default {\n  name: "typed", version: "1.0.0", description: "doubles n",\n` +
        `  inputSchema: { type: "object" }, outputSchema: { type: "object" },\n` +
        `  async run(input: In) { return { n: input.n * 2 }; },\n};\n`,
    );
    await writeFile(join(dir, "shapeless.mjs"), `export default { name: "shapeless", version: "1" };\n`);
    await writeFile(join(dir, "bad-item.mjs"), `export default [${moduleSource(["ok"]).slice(15, -2)}, 42];\n`);
    await writeFile(join(dir, "nodefault.mjs"), `export const agent = {};\n`);
    await writeFile(join(dir, "explodes.mjs"), `throw new Error("boom at import");\n`);
    await writeFile(join(dir, "notes.txt"), "not a module");
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("loads default exports: one agent or an array, from absolute or relative paths", async () => {
    const defs = await loadAgentModules([join(dir, "echo.mjs"), relative(process.cwd(), join(dir, "pair.js"))]);
    expect(defs.map((d) => d.name)).toEqual(["echo", "first", "second"]);
    const fake = createFakeContext();
    expect(await defs[0]!.run({ a: 1 }, fake.ctx)).toEqual({ echoed: { a: 1 } });
    expect(fake.deltas).toEqual(["echo"]);
    const registry = createAgentRegistry([...builtinAgents(), ...defs]);
    expect(registry.list().map((d) => d.name)).toEqual([
      "analyze-document",
      "chat",
      "echo",
      "first",
      "second",
      "simulate",
      "summarize",
      "validate",
    ]);
  });

  it("loads TypeScript modules", async () => {
    const [typed] = await loadAgentModules([join(dir, "typed.ts")]);
    expect(await typed!.run({ n: 21 }, createFakeContext().ctx)).toEqual({ n: 42 });
  });

  it("rejects a module that does not export agents, naming the file", async () => {
    const file = (name: string) => join(dir, name);
    await expect(loadAgentModules([file("shapeless.mjs")])).rejects.toThrow(
      `agent module ${file("shapeless.mjs")}: default export: agent "shapeless": description must be a non-empty string`,
    );
    await expect(loadAgentModules([file("bad-item.mjs")])).rejects.toThrow(
      `agent module ${file("bad-item.mjs")}: default export[1]: must be an object`,
    );
    await expect(loadAgentModules([file("nodefault.mjs")])).rejects.toThrow(
      `agent module ${file("nodefault.mjs")}: has no default export`,
    );
    await expect(loadAgentModules([file("explodes.mjs")])).rejects.toThrow(
      `agent module ${file("explodes.mjs")}: failed to load: boom at import`,
    );
    await expect(loadAgentModules([file("missing.mjs")])).rejects.toThrow(
      `agent module ${file("missing.mjs")}: not found`,
    );
    await expect(loadAgentModules([file("notes.txt")])).rejects.toThrow(
      `agent module ${file("notes.txt")}: unsupported file type ".txt"`,
    );
  });
});

describe("resolveAgentPaths", () => {
  it("expands folders (module files, or the package entry) and package names from node_modules", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentd-paths-"));
    try {
      await mkdir(join(dir, "plain"));
      for (const f of ["b.ts", "a.mjs", "a.test.ts", "types.d.ts", "notes.md"])
        await writeFile(join(dir, "plain", f), "");
      await mkdir(join(dir, "pkg"));
      await writeFile(
        join(dir, "pkg/package.json"),
        JSON.stringify({ exports: { ".": { import: "./dist/index.js" } } }),
      );
      await mkdir(join(dir, "node_modules/@me/agents"), { recursive: true });
      await writeFile(
        join(dir, "node_modules/@me/agents/package.json"),
        JSON.stringify({ name: "@me/agents", main: "main.js" }),
      );
      await writeFile(join(dir, "node_modules/@me/agents/main.js"), "");
      expect(await resolveAgentPaths(["plain", "./pkg", "@me/agents", "./one.ts"], dir)).toEqual([
        join(dir, "plain/a.mjs"),
        join(dir, "plain/b.ts"),
        join(dir, "pkg/dist/index.js"),
        join(dir, "node_modules/@me/agents/main.js"),
        join(dir, "one.ts"),
      ]);
      await expect(resolveAgentPaths(["no-such-agents-package"], dir)).rejects.toThrow(
        'agent package "no-such-agents-package": not found',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
