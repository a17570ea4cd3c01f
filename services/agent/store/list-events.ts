import type { Sql } from "../../shared/db/database.js";
import type { StoredEvent } from "../model/change.js";
import type { TaskKey } from "../model/task.js";

/** A row of `task_events`, of each kind: int8 `sequence` may come back as a string. */
type EventRow = StoredEvent extends infer E
  ? E extends StoredEvent
    ? Omit<E, "sequence"> & { sequence: string | number }
    : never
  : never;

/** Events of one task with sequence > `afterSequence`, in order. */
export async function listEvents(sql: Sql, key: TaskKey, afterSequence: number, limit: number): Promise<StoredEvent[]> {
  const rows = await sql<EventRow[]>`
    SELECT sequence, time, kind, data, actor FROM task_events
    WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId} AND sequence > ${afterSequence}
    ORDER BY sequence
    LIMIT ${limit}
  `;
  return rows.map((r) => ({ ...r, sequence: Number(r.sequence) }));
}
