// The human-in-the-loop decisions alone: pure functions of the locked task row.
import { describe, expect, it } from "vitest";
import type { TaskRow } from "../../services/agent/model/task.js";
import { newTaskRow } from "../../services/agent/tasks/new-task.js";
import { answer, cancel, expireInput, MAX_REMEMBERED_ANSWERS, pause } from "../../services/agent/tasks/transitions.js";

const now = new Date("2026-01-01T00:00:00Z");
function row(patch: Partial<TaskRow> = {}): TaskRow {
  const base = newTaskRow(
    "t1",
    "1.0.0",
    { agent: "simulate", input: {}, requestId: null, labels: {}, timeoutMs: 1000, maxAttempts: 3, webhook: null },
    "",
    now,
  );
  return { ...base, ...patch };
}

describe("input transitions", () => {
  it("pause arms the expiry from the request's expireTime, and records the request as an event", () => {
    const change = pause({ prompt: "ok?", schema: {}, expireTime: "2026-01-01T00:01:00.000Z" })(
      row({ state: "RUNNING" }),
    )!;
    expect(change.patch).toMatchObject({
      state: "INPUT_REQUIRED",
      input_expires_at: new Date("2026-01-01T00:01:00Z"),
      lease_id: null,
    });
    expect(change.events).toEqual([
      { kind: "inputRequest", data: { prompt: "ok?", schema: {}, expireTime: "2026-01-01T00:01:00.000Z" } },
    ]);
    expect(pause({ prompt: "ok?", schema: {} })(row())!.patch.input_expires_at).toBeNull();
  });

  it("answer queues the task with the wrapped answer, remembers its request_id (bounded), and ignores other states", () => {
    const waiting = row({ state: "INPUT_REQUIRED", input_expires_at: now, input_answer_ids: ["a"] });
    const change = answer(null, "b", now)(waiting)!;
    expect(change.patch).toMatchObject({
      state: "QUEUED",
      pending_input: { value: null },
      input_request: null,
      input_expires_at: null,
    });
    expect(change.patch.input_answer_ids).toEqual(["a", "b"]);
    expect(answer(1, null, now)(waiting)!.patch.input_answer_ids).toEqual(["a"]);
    const many = Array.from({ length: MAX_REMEMBERED_ANSWERS }, (_, i) => `r${i}`);
    expect(
      answer(1, "new", now)(row({ state: "INPUT_REQUIRED", input_answer_ids: many }))!.patch.input_answer_ids,
    ).toEqual([...many.slice(1), "new"]);
    expect(answer(1, "x", now)(row({ state: "RUNNING" }))).toBeNull();
  });

  it("expireInput fails only an INPUT_REQUIRED task past its expiry (or any expiring one, for the sweep)", () => {
    const later = new Date(now.getTime() + 1000);
    const waiting = row({ state: "INPUT_REQUIRED", input_expires_at: later });
    expect(expireInput(now)(waiting)).toBeNull();
    expect(expireInput(now, { checkTime: false })(waiting)!.patch).toMatchObject({
      state: "FAILED",
      error: { code: "INPUT_TIMEOUT" },
    });
    const change = expireInput(new Date(later.getTime() + 1))(waiting)!;
    expect(change.patch).toMatchObject({
      state: "FAILED",
      input_expires_at: null,
      error: { code: "INPUT_TIMEOUT", retryable: false },
    });
    expect(expireInput(later)(row({ state: "INPUT_REQUIRED", input_expires_at: null }))).toBeNull();
    expect(expireInput(later)(row({ state: "QUEUED", input_expires_at: now }))).toBeNull();
  });

  it("cancel disarms the expiry", () => {
    expect(cancel(now)(row({ state: "INPUT_REQUIRED", input_expires_at: now }))!.patch.input_expires_at).toBeNull();
  });
});
