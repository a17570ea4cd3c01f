// webhook-id (the delivery id) is derived from (tenant, task, event sequence,
// endpoint): a delivery written again for the same event, as after a database
// failover that lost the commit which first wrote it, carries the same id and
// is stored once.
import { afterEach, describe, expect, it } from "vitest";
import { enqueueDeliveries } from "../../services/agent/outbox/enqueue-deliveries.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { createTestDatabase } from "../support/database.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function open(): Promise<Database> {
  const test = await createTestDatabase();
  const db = await openDatabase({ ...(test.url ? { url: test.url } : { dataDir: test.dataDir! }), maxConnections: 2 });
  cleanups.push(
    () => test.drop(),
    () => db.close(),
  );
  return db;
}

describe("webhook-id", () => {
  it("is the same for the same (task, event, endpoint) and differs otherwise", async () => {
    const db = await open();
    const endpoint = "0190c7d4-aaaa-7000-8000-000000000001";
    await db.sql`
      INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, target, event_types)
      VALUES ('t1', ${endpoint}, 'https://example.com/hook', 'https://example.com:443', ${["task.succeeded"]}::text[])
    `;
    const task = "01a2295f-3c42-7670-8d49-474fcaea9446";
    const event = { sequence: 70000, type: "task.succeeded", payload: { type: "task.succeeded" } };
    const own = { url: "https://example.org/own", target: "https://example.org:443", types: ["task.succeeded"] };

    expect(await enqueueDeliveries(db.sql, "t1", task, [event], own)).toBe(2);
    // Written again (the commit was lost and the outcome applied again): nothing new, same ids.
    expect(await enqueueDeliveries(db.sql, "t1", task, [event], own)).toBe(0);
    await enqueueDeliveries(db.sql, "t1", task, [{ ...event, sequence: 70001 }], own);
    await enqueueDeliveries(db.sql, "t2", task, [event], own);

    const rows = await db.sql<
      { tenant_id: string; delivery_id: string; endpoint_id: string | null; sequence: number }[]
    >`
      SELECT tenant_id, delivery_id::text, endpoint_id::text, sequence FROM webhook_deliveries ORDER BY delivery_id
    `;
    expect(rows).toHaveLength(5);
    expect(new Set(rows.map((r) => r.delivery_id)).size).toBe(5);
    for (const r of rows) {
      // The task's creation time first (ids sort roughly by time), a UUID of version 8.
      expect(r.delivery_id.slice(0, 13)).toBe("01a2295f-3c42");
      expect(r.delivery_id[14]).toBe("8");
    }
    // Within a task, a later event sorts later for the same endpoint.
    const own70000 = rows.find((r) => r.tenant_id === "t1" && r.endpoint_id === null && r.sequence === 70000)!;
    const own70001 = rows.find((r) => r.tenant_id === "t1" && r.endpoint_id === null && r.sequence === 70001)!;
    expect(own70001.delivery_id > own70000.delivery_id).toBe(true);
  });
});
