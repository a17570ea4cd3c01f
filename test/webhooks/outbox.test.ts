// The outbox sink's cheap decision (`wants`) and the event-type mapping.
import { describe, expect, it } from "vitest";
import type { StoredEvent } from "../../services/agent/model/change.js";
import type { TaskRow } from "../../services/agent/model/task.js";
import { targetOf, webhookTypeOf } from "../../services/agent/outbox/event-types.js";
import { createWebhookOutbox } from "../../services/agent/outbox/outbox.js";
import type { Tx } from "../../services/shared/db/database.js";
import { createLocalWakeupBus } from "../../services/shared/wakeup/bus.js";

const task = (webhook: TaskRow["webhook"] = null) => ({ tenant_id: "t1", task_id: "x", webhook }) as unknown as TaskRow;
// A state_change here may leave out its task snapshot (what the outbox does not read).
const event = (kind: StoredEvent["kind"], data: StoredEvent["data"] = {}) =>
  ({ sequence: 2, time: new Date(), kind, data }) as StoredEvent;
const succeeded = event("stateChange", { state: "TASK_STATE_SUCCEEDED", task: { id: "x" } });

/** A transaction stand-in answering the subscription query with `types` and counting queries. */
function fakeTx(types: string[]) {
  const calls: string[] = [];
  const tx = ((strings: TemplateStringsArray) => {
    const text = strings.join("?");
    if (!/\b(SELECT|INSERT)\b/.test(text)) return text; // a fragment inside a query, not a query
    calls.push(text);
    return Promise.resolve(text.includes("DISTINCT unnest") ? types.map((type) => ({ type })) : []);
  }) as unknown as Tx;
  (tx as unknown as { json: (v: unknown) => unknown }).json = (v: unknown) => v;
  (tx as unknown as { unsafe: (v: string) => string }).unsafe = (v: string) => v;
  return { tx, calls };
}

describe("webhookTypeOf", () => {
  it("maps state changes and progress, and nothing else", () => {
    expect(webhookTypeOf(event("stateChange", { state: "TASK_STATE_RUNNING" }))).toBe("task.running");
    expect(webhookTypeOf(event("stateChange", { state: "TASK_STATE_INPUT_REQUIRED" }))).toBe("task.input_required");
    expect(webhookTypeOf(event("stateChange", { state: "TASK_STATE_SUCCEEDED" }))).toBe("task.succeeded");
    expect(webhookTypeOf(event("stateChange", { state: "TASK_STATE_FAILED" }))).toBe("task.failed");
    expect(webhookTypeOf(event("stateChange", { state: "TASK_STATE_CANCELED" }))).toBe("task.canceled");
    expect(webhookTypeOf(event("stateChange", { state: "TASK_STATE_QUEUED" }))).toBeNull();
    expect(webhookTypeOf(event("progress", { percent: 50 }))).toBe("task.progress");
    for (const kind of ["delta", "toolCall", "log", "artifact", "inputRequest"] as const)
      expect(webhookTypeOf(event(kind))).toBeNull();
  });

  it("keys destinations by scheme, host and port", () => {
    expect(targetOf("https://Example.com/a?b")).toBe("https://example.com:443");
    expect(targetOf("http://127.0.0.1:8080/x")).toBe("http://127.0.0.1:8080");
  });
});

describe("wants", () => {
  it("is false for events no webhook carries, without asking the database", () => {
    const outbox = createWebhookOutbox({ bus: createLocalWakeupBus() });
    expect(outbox.wants(task(), [event("delta"), event("stateChange", { state: "TASK_STATE_QUEUED" })])).toBe(false);
  });

  it("is true for the task's own subscribed types, and for a tenant it knows nothing about yet", () => {
    const outbox = createWebhookOutbox({ bus: createLocalWakeupBus() });
    expect(outbox.wants(task({ url: "https://a/", eventTypes: ["task.succeeded"] }), [succeeded])).toBe(true);
    expect(outbox.wants(task(), [succeeded])).toBe(true);
  });

  it("remembers the tenant's subscriptions for cacheMs after an append, and forgets them on invalidate", async () => {
    let now = 0;
    const outbox = createWebhookOutbox({ bus: createLocalWakeupBus(), cacheMs: 1000, now: () => now });
    const { tx, calls } = fakeTx(["task.failed"]);
    await outbox.append(tx, task(), [succeeded]);
    expect(calls).toHaveLength(1); // the subscriptions; no insert, since nothing subscribes to task.succeeded
    await outbox.append(tx, task(), [event("stateChange", { state: "TASK_STATE_FAILED" })]);
    expect(calls).toHaveLength(2); // the outbox insert, the subscriptions still known
    expect(outbox.wants(task(), [succeeded])).toBe(false);
    expect(outbox.wants(task(), [event("stateChange", { state: "TASK_STATE_FAILED" })])).toBe(true);
    now = 1001;
    expect(outbox.wants(task(), [succeeded])).toBe(true);
    now = 0;
    outbox.invalidate("t1");
    expect(outbox.wants(task(), [succeeded])).toBe(true);
  });

  it("wakes the notifiers after commit only when something may have been enqueued", async () => {
    const bus = createLocalWakeupBus();
    const hints: string[] = [];
    bus.subscribe("delivery", (id) => hints.push(id));
    const outbox = createWebhookOutbox({ bus });
    outbox.afterCommit!(task(), [event("delta")]);
    outbox.afterCommit!(task(), [succeeded]);
    await new Promise((r) => setTimeout(r, 0));
    expect(hints).toEqual(["x"]);
  });

  it("looks a tenant's subscriptions up once for all the transactions that need them at once", async () => {
    const outbox = createWebhookOutbox({ bus: createLocalWakeupBus() });
    const { tx, calls } = fakeTx([]);
    await Promise.all([1, 2, 3, 4].map(() => outbox.append(tx, task(), [succeeded])));
    expect(calls.filter((c) => c.includes("DISTINCT unnest"))).toHaveLength(1);
    expect(calls).toHaveLength(1); // and no insert: no endpoint, no own webhook
  });
});
