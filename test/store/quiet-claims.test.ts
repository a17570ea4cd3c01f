import { randomUUID } from "node:crypto";
// Claims with the webhook outbox as the sink: a task whose task.running event nobody subscribes to
// is claimed in one autocommitted statement; one with a task webhook, or of a tenant with an
// endpoint for task.running, is claimed in the outbox's transaction, its delivery written with it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWebhookOutbox } from "../../services/agent/outbox/outbox.js";
import { createTaskWriter } from "../../services/agent/store/task-writer.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { createLocalWakeupBus } from "../../services/shared/wakeup/bus.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { queuedTaskRow } from "../support/task-rows.js";

type Writer = ReturnType<typeof createTaskWriter>;
type Row = Parameters<Writer["insert"]>[0];

let testDb: TestDatabase;
let db: Database;
let writer: Writer;

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await openDatabase(testDb.url ? { url: testDb.url, maxConnections: 4 } : { dataDir: testDb.dataDir! });
  const bus = createLocalWakeupBus();
  writer = createTaskWriter({ sql: db.sql, bus, sink: createWebhookOutbox({ bus, sql: db.sql }) });
});

afterAll(async () => {
  await db?.close();
  await testDb?.drop();
});

describe("a claim with the webhook outbox", () => {
  it("claims quiet and subscribed tasks alike, and writes a task.running delivery for exactly the subscribed ones", async () => {
    await db.sql`
      INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, target, event_types)
      VALUES ('subscribed', ${randomUUID()}, 'http://127.0.0.1:9/hook', 'http://127.0.0.1:9', ${["task.running"]}::text[]),
             ('other-types', ${randomUUID()}, 'http://127.0.0.1:9/hook', 'http://127.0.0.1:9', ${["task.succeeded"]}::text[])
    `;
    const quiet = [queuedTaskRow("quiet"), queuedTaskRow("other-types")];
    const subscribed = [
      queuedTaskRow("subscribed"),
      queuedTaskRow("quiet", { url: "http://127.0.0.1:9/own", eventTypes: ["task.running"] }),
    ];
    for (const row of [...quiet, ...subscribed]) expect(await writer.insert(row)).not.toBeNull();

    const claimed = await writer.claim(10, { owner: "runner-1", leaseMs: 30_000 });
    expect(claimed.map((t) => t.task_id).sort()).toEqual([...quiet, ...subscribed].map((r) => r.task_id).sort());
    expect(claimed.every((t) => t.state === "RUNNING" && t.lease_owner === "runner-1")).toBe(true);

    const deliveries = await db.sql<{ task_id: string; event_type: string }[]>`
      SELECT task_id, event_type FROM webhook_deliveries
    `;
    expect(deliveries.map((d) => d.task_id).sort()).toEqual(subscribed.map((r) => r.task_id).sort());
    expect(deliveries.every((d) => d.event_type === "task.running")).toBe(true);
    const events = await db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM task_events WHERE kind = 'stateChange' AND data->>'state' = 'TASK_STATE_RUNNING'
    `;
    expect(events[0]?.n).toBe(4);
    expect(await writer.claim(10, { owner: "runner-1", leaseMs: 30_000 })).toEqual([]);
  });

  it("goes straight to the transaction while claims find only subscribed tasks, and back to one statement once one finds none", async () => {
    await db.sql`
      INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, target, event_types)
      VALUES ('loud-tenant', ${randomUUID()}, 'http://127.0.0.1:9/hook', 'http://127.0.0.1:9', ${["task.running"]}::text[])
    `;
    // The writer's own statements, counted: transactions begun, and claims autocommitted outside one.
    const counts = { transactions: 0, oneStatementClaims: 0 };
    const sql = new Proxy(db.sql, {
      apply(target, self, args) {
        const text = Array.isArray(args[0]) ? (args[0] as string[]).join("") : "";
        if (text.includes("WITH picked")) counts.oneStatementClaims++;
        return Reflect.apply(target, self, args);
      },
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop === "begin") counts.transactions++;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const bus = createLocalWakeupBus();
    const routed = createTaskWriter({ sql, bus, sink: createWebhookOutbox({ bus, sql: db.sql }) });
    const terms = { owner: "runner-2", leaseMs: 30_000 };
    const claimOne = async (row: Row) => {
      expect(await routed.insert(row)).not.toBeNull();
      const before = { ...counts };
      expect((await routed.claim(1, terms)).map((t) => t.task_id)).toEqual([row.task_id]);
      return {
        transactions: counts.transactions - before.transactions,
        oneStatement: counts.oneStatementClaims - before.oneStatementClaims,
      };
    };
    const loud = [queuedTaskRow("loud-tenant"), queuedTaskRow("loud-tenant")];
    // First a one-statement attempt that finds only a subscribed task, then the transaction.
    expect(await claimOne(loud[0]!)).toEqual({ transactions: 1, oneStatement: 1 });
    // The last claim was all subscribed: straight to the transaction.
    expect(await claimOne(loud[1]!)).toEqual({ transactions: 1, oneStatement: 0 });
    // A quiet task is still claimed in the transaction once, with no delivery; then one statement again.
    expect(await claimOne(queuedTaskRow("quiet-tenant"))).toEqual({ transactions: 1, oneStatement: 0 });
    expect(await claimOne(queuedTaskRow("quiet-tenant"))).toEqual({ transactions: 0, oneStatement: 1 });

    const deliveries = await db.sql<{ task_id: string }[]>`
      SELECT task_id FROM webhook_deliveries WHERE tenant_id = 'loud-tenant' AND event_type = 'task.running'
    `;
    expect(deliveries.map((d) => d.task_id).sort()).toEqual(loud.map((r) => r.task_id).sort());
  });
});
