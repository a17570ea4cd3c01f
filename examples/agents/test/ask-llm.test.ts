import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import askLlm from "../agents/ask-llm.ts";
import { testContext } from "./context.ts";

// A stand-in for an OpenAI-compatible server: answers every chat completion with one message.
const server = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const question = JSON.parse(body).messages[0].content;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ choices: [{ message: { role: "assistant", content: `You asked: ${question}` } }] }));
  });
});

before(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  process.env.LLM_BASE_URL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  process.env.LLM_MODEL = "test-model";
});
after(() => server.close());

test("asks the model, streams the answer and records the call as a tool call", async () => {
  const { ctx, seen } = testContext();
  const out = await askLlm.run({ question: "Why is the sky blue?" }, ctx);
  assert.deepEqual(out, { answer: "You asked: Why is the sky blue?" });
  assert.deepEqual(seen.deltas, ["You asked: Why is the sky blue?"]);
  assert.equal(seen.tools[0]?.name, "llm");
});

test("fails with NOT_CONFIGURED without a server", async () => {
  const saved = process.env.LLM_BASE_URL;
  delete process.env.LLM_BASE_URL;
  await assert.rejects(askLlm.run({ question: "x" }, testContext().ctx), { code: "NOT_CONFIGURED" });
  process.env.LLM_BASE_URL = saved;
});
