// The bound on a webhook body: a task too large for it loses its largest fields, largest
// first, and the body names them in data.omittedFields for the receiver to fetch with GetTask.
import type { JsonObject } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { webhookPayload } from "../../services/agent/outbox/event-types.js";

const time = new Date("2026-12-01T00:00:00Z");
const size = (body: unknown) => Buffer.byteLength(JSON.stringify(body));
const task = (fields: JsonObject): JsonObject => ({
  id: "t-1",
  agent: "simulate",
  state: "TASK_STATE_SUCCEEDED",
  lastSequence: "7",
  ...fields,
});

describe("webhookPayload", () => {
  it("leaves a body within the bound as it is, with no omittedFields", () => {
    const body = webhookPayload("task.succeeded", time, task({ input: { a: 1 }, output: { b: 2 } }), 7, 4096);
    expect(body).toEqual({
      type: "task.succeeded",
      timestamp: time.toISOString(),
      data: { task: task({ input: { a: 1 }, output: { b: 2 } }), sequence: 7 },
    });
  });

  it("leaves out the largest field first, and only as many as needed", () => {
    const big = task({
      input: { text: "x".repeat(10_000) },
      output: { text: "y".repeat(2_000) },
      labels: { team: "docs" },
    });
    const body = webhookPayload("task.succeeded", time, big, 7, 4096) as {
      data: { task: JsonObject; omittedFields: string[] };
    };
    expect(body.data.omittedFields).toEqual(["input"]);
    expect(body.data.task.input).toBeUndefined();
    expect(body.data.task.output).toEqual({ text: "y".repeat(2_000) });
    expect(body.data.task.id).toBe("t-1");
    expect(size(body)).toBeLessThanOrEqual(4096);
  });

  it("leaves out several when one is not enough, and always fits the bound", () => {
    const big = task({
      input: { text: "x".repeat(3_000) },
      output: { text: "y".repeat(3_500) },
      artifacts: [{ name: "a", text: "z".repeat(2_500) }],
      progress: { message: "p".repeat(100) },
    });
    const body = webhookPayload("task.progress", time, big, 3, 4096) as {
      data: { task: JsonObject; omittedFields: string[]; sequence: number };
    };
    expect(body.data.omittedFields).toEqual(["output", "input"]);
    expect(body.data.task.artifacts).toBeDefined();
    expect(body.data.sequence).toBe(3);
    expect(size(body)).toBeLessThanOrEqual(4096);
  });
});
