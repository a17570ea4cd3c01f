// toTask builds the message field by field; the form clients, webhooks and snapshots see is the
// proto3 JSON of taskJson. This property keeps the two the same task for any stored row.
import { equals, fromJson } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TaskSchema } from "../../gen/agentd/v1/task_pb.js";
import { TASK_STATES, type TaskRow } from "../../services/agent/model/task.js";
import { toTask } from "../../services/agent/wire/convert.js";
import { taskJson } from "../../services/agent/wire/task-json.js";

const date = fc.date({
  min: new Date("2000-01-01T00:00:00Z"),
  max: new Date("2100-01-01T00:00:00Z"),
  noInvalidDate: true,
});
const text = fc.string({ maxLength: 12 });
// Stored JSON values: finite numbers only (the store refuses others), any nesting.
const json = fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.parse(JSON.stringify(value)));
const object = fc.dictionary(text, json, { maxKeys: 3 });

const artifact = fc.oneof(
  fc.record({ name: text, mimeType: fc.constant("text/markdown"), text }),
  fc.record({ name: text, mimeType: fc.constant("image/png"), data: fc.constant("iVBORw0KGgo=") }),
);

const row: fc.Arbitrary<TaskRow> = fc.record({
  tenant_id: fc.constant("t1"),
  task_id: fc.uuid(),
  agent: text,
  agent_version: text,
  state: fc.constantFrom(...TASK_STATES),
  input: fc.option(json, { nil: null }),
  output: fc.option(json, { nil: null }),
  error: fc.option(
    fc.record({ code: text, message: text, retryable: fc.boolean(), details: object }, { requiredKeys: ["code"] }),
    { nil: null },
  ),
  progress: fc.option(
    fc.record({ step: fc.nat(100), totalSteps: fc.nat(100), percent: fc.integer({ min: 0, max: 100 }), message: text }),
    { nil: null },
  ),
  input_request: fc.option(
    fc.record(
      { prompt: text, schema: object, expireTime: date.map((d) => d.toISOString()) },
      { requiredKeys: ["prompt"] },
    ),
    { nil: null },
  ),
  labels: fc.dictionary(text, text, { maxKeys: 3 }),
  artifacts: fc.array(artifact, { maxLength: 2 }),
  webhook: fc.constant(null),
  request_id: fc.option(text, { nil: null }),
  request_fingerprint: fc.constant(null),
  attempt: fc.nat(10),
  max_attempts: fc.integer({ min: 1, max: 10 }),
  timeout_ms: fc.oneof(fc.integer({ min: 1, max: 86_400_000 }), fc.integer({ min: 1, max: 86_400_000 }).map(String)),
  last_sequence: fc.oneof(fc.nat(1_000_000), fc.nat(1_000_000).map(String)),
  create_time: date,
  start_time: fc.option(date, { nil: null }),
  end_time: fc.option(date, { nil: null }),
  update_time: date,
  run_after: date,
  lease_owner: fc.constant(null),
  lease_id: fc.constant(null),
  lease_expires_at: fc.constant(null),
  checkpoint: fc.constant(null),
  pending_input: fc.constant(null),
  input_expires_at: fc.constant(null),
  input_answer_ids: fc.constant([]),
}) as fc.Arbitrary<TaskRow>;

describe("toTask", () => {
  it("is the task of its proto3 JSON form, for any stored row", () => {
    fc.assert(
      fc.property(row, (stored) => {
        const direct = toTask(stored);
        const viaJson = fromJson(TaskSchema, taskJson(stored));
        expect(equals(TaskSchema, direct, viaJson)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});
