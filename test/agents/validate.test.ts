// The `validate` agent: known answers on real schemas (draft-07 with $ref and formats, 2020-12
// keywords), every violation reported with a JSON Pointer, INVALID_SCHEMA for schemas that do not
// compile, the bounded compile cache; and the agent over the network through Run.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import type { Json } from "../../services/agent/agents/agent.js";
import { createSchemaCache } from "../../services/agent/agents/validate/schema-cache.js";
import { createValidateAgent } from "../../services/agent/agents/validate.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { plain, value } from "../support/json.js";
import { createFakeContext } from "./fake-context.js";

// A draft-07 schema in the style of a real API payload: definitions, $ref, formats.
const ORDER_SCHEMA: Json = {
  $schema: "http://json-schema.org/draft-07/schema#",
  definitions: {
    address: {
      type: "object",
      properties: { street: { type: "string", minLength: 1 }, postcode: { type: "string", pattern: "^[0-9]{5}$" } },
      required: ["street", "postcode"],
    },
  },
  type: "object",
  properties: {
    id: { type: "string", format: "uuid" },
    email: { type: "string", format: "email" },
    placed: { type: "string", format: "date-time" },
    shipping: { $ref: "#/definitions/address" },
    items: {
      type: "array",
      minItems: 1,
      items: { type: "object", properties: { qty: { type: "integer", minimum: 1 } }, required: ["qty"] },
    },
  },
  required: ["id", "email", "items"],
  additionalProperties: false,
};

// 2020-12: prefixItems, items after them, unevaluatedProperties across allOf, $defs.
const POINT_SCHEMA: Json = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $defs: { coord: { type: "number" } },
  type: "object",
  allOf: [{ properties: { label: { type: "string" } } }],
  properties: {
    at: { type: "array", prefixItems: [{ $ref: "#/$defs/coord" }, { $ref: "#/$defs/coord" }], items: false },
  },
  required: ["at"],
  unevaluatedProperties: false,
};

async function validate(schema: Json, data: Json) {
  const agent = createValidateAgent();
  return agent.run({ schema, data }, createFakeContext().ctx);
}

describe("validate (known answers)", () => {
  it("accepts a valid draft-07 document with $ref and formats", async () => {
    const out = await validate(ORDER_SCHEMA, {
      id: "0b9e1a52-8f1c-4f5e-9a33-2c6f9f1f2d10",
      email: "ada@example.org",
      placed: "2024-05-01T10:00:00Z",
      shipping: { street: "1 Main St", postcode: "12345" },
      items: [{ qty: 2 }],
    });
    expect(out).toEqual({ valid: true, dialect: "draft-07", errors: [] });
  });

  it("reports every violation, not the first, each with a JSON Pointer", async () => {
    const out = await validate(ORDER_SCHEMA, {
      id: "not-a-uuid",
      email: "nobody",
      placed: "yesterday",
      shipping: { street: "", postcode: "ABC" },
      items: [{ qty: 0 }, {}],
      extra: true,
    });
    expect(out.valid).toBe(false);
    const found = out.errors.map((e) => `${e.path} ${e.keyword}`).sort();
    expect(found).toEqual(
      [
        " additionalProperties",
        "/email format",
        "/id format",
        "/items/0/qty minimum",
        "/items/1 required",
        "/placed format",
        "/shipping/postcode pattern",
        "/shipping/street minLength",
      ].sort(),
    );
    const ref = out.errors.find((e) => e.path === "/shipping/postcode");
    expect(ref?.schema_path).toBe("#/definitions/address/properties/postcode/pattern");
    expect(out.errors.find((e) => e.path === "/email")?.message).toBe('must match format "email"');
  });

  it("understands 2020-12 keywords: prefixItems, items: false, unevaluatedProperties, $defs", async () => {
    expect(await validate(POINT_SCHEMA, { at: [1, 2], label: "home" })).toEqual({
      valid: true,
      dialect: "2020-12",
      errors: [],
    });
    const out = await validate(POINT_SCHEMA, { at: [1, "two", 3], colour: "red" });
    expect(out.dialect).toBe("2020-12");
    const found = out.errors.map((e) => `${e.path} ${e.keyword}`).sort();
    expect(found).toEqual(["/at items", "/at/1 type", " unevaluatedProperties"].sort());
  });

  it("escapes JSON Pointer segments (~0 and ~1)", async () => {
    const out = await validate({ type: "object", properties: { "a/b~c": { type: "integer" } } }, { "a/b~c": "x" });
    expect(out.errors.map((e) => e.path)).toEqual(["/a~1b~0c"]);
  });

  it('validates recursive schemas that refer to their root with $ref: "#" (draft-07 and 2020-12)', async () => {
    // A tree of named nodes, the classic recursive schema; the same root-less shape twice in a
    // row (the second from the cache) and once more as 2020-12.
    const tree = {
      type: "object",
      properties: { name: { type: "string" }, children: { type: "array", items: { $ref: "#" } } },
      required: ["name"],
    };
    const data: Json = { name: "root", children: [{ name: "a", children: [{ name: 7 }] }, { children: [] }] };
    const expected = [
      { path: "/children/0/children/0/name", keyword: "type" },
      { path: "/children/1", keyword: "required" },
    ];
    for (const schema of [tree, tree, { $schema: "https://json-schema.org/draft/2020-12/schema", ...tree }]) {
      const out = await validate(schema, data);
      expect(out.valid).toBe(false);
      expect(out.errors.map(({ path, keyword }) => ({ path, keyword }))).toEqual(expected);
    }
    expect((await validate(tree, { name: "leaf", children: [{ name: "x" }] })).valid).toBe(true);
    // With a $id of its own the root is found by that id.
    const withId = { $id: "https://example.com/tree.json", ...tree };
    expect((await validate(withId, data)).errors).toHaveLength(2);
  });

  it("fails with INVALID_SCHEMA, not a crash, for a schema that refers to itself without end", async () => {
    const agent = createValidateAgent();
    await expect(agent.run({ schema: { $ref: "#" }, data: 1 }, createFakeContext().ctx)).rejects.toMatchObject({
      code: "INVALID_SCHEMA",
      retryable: false,
      message: expect.stringContaining("refers to itself without end"),
    });
  });

  it("fails with INVALID_SCHEMA and the compiler's message for a schema that does not compile", async () => {
    const agent = createValidateAgent();
    const ctx = createFakeContext().ctx;
    await expect(agent.run({ schema: { type: "strin" }, data: 1 }, ctx)).rejects.toMatchObject({
      code: "INVALID_SCHEMA",
      retryable: false,
      message: expect.stringContaining("data/type must be equal to one of the allowed values"),
    });
    await expect(agent.run({ schema: { $ref: "#/definitions/missing" }, data: 1 }, ctx)).rejects.toMatchObject({
      code: "INVALID_SCHEMA",
      message: expect.stringContaining("can't resolve reference #/definitions/missing"),
    });
    await expect(
      agent.run({ schema: { type: "string", format: "no-such-format" }, data: "x" }, ctx),
    ).rejects.toMatchObject({
      code: "INVALID_SCHEMA",
      message: expect.stringContaining("unknown format"),
    });
    await expect(
      agent.run({ schema: { $schema: "http://json-schema.org/draft-04/schema#" }, data: 1 }, ctx),
    ).rejects.toMatchObject({
      code: "INVALID_SCHEMA",
    });
  });
});

describe("schema cache", () => {
  it("compiles each distinct schema once, whatever its key order, and stays within its bound", () => {
    const cache = createSchemaCache({ maxEntries: 3 });
    const a = cache.compile({ type: "object", properties: { x: { type: "string" } } });
    const again = cache.compile({ properties: { x: { type: "string" } }, type: "object" });
    expect(again).toBe(a);
    for (let i = 0; i < 10; i++) cache.compile({ type: "integer", minimum: i });
    expect(cache.size()).toBe(3);
    // The oldest was evicted: compiling it again gives a new (still correct) validator.
    const b = cache.compile({ type: "object", properties: { x: { type: "string" } } });
    expect(b).not.toBe(a);
    expect(b.validate({ x: 1 })).toEqual([
      { path: "/x", keyword: "type", message: "must be string", schema_path: "#/properties/x/type" },
    ]);
  });
});

describe("validate over Run", () => {
  let agentd: TestAgentd;
  beforeAll(async () => {
    agentd = await startAgentd();
  });
  afterAll(async () => {
    await agentd?.close();
  });

  it("answers synchronously with every violation", async () => {
    const { task } = await agentd.client.agents.run({
      agent: "validate",
      input: value({ schema: POINT_SCHEMA, data: { at: [1, "2"] } }),
    });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    expect(plain(task?.output)).toEqual({
      valid: false,
      dialect: "2020-12",
      errors: [{ path: "/at/1", keyword: "type", message: "must be number", schema_path: "#/$defs/coord/type" }],
    });
  });

  it("returns a task FAILED with INVALID_SCHEMA for a schema that does not compile", async () => {
    const { task } = await agentd.client.agents.run({
      agent: "validate",
      input: value({ schema: { minimum: "ten" }, data: 1 }),
    });
    expect(task?.state).toBe(TaskState.FAILED);
    expect(task?.error?.code).toBe("INVALID_SCHEMA");
    expect(task?.error?.retryable).toBe(false);
  });
});
