import type { Sql } from "../../shared/db/database.js";
import type { TaskKey } from "../model/task.js";

export interface WatchedSequence extends TaskKey {
  /** `tasks.last_sequence`: the newest event in the task's log. */
  lastSequence: number;
}

/** Tasks per query of `watchedSequences`: its callers split longer lists. */
export const WATCHED_PER_QUERY = 500;

/** The newest event sequence of each of `keys` that still exists (a task missing from the
 * answer was deleted): the poll of the event hub's watched tasks and of the tasks being waited on
 * (tasks/task-waiters.ts), one query per chunk. */
export async function watchedSequences(sql: Sql, keys: readonly TaskKey[]): Promise<WatchedSequence[]> {
  const rows = await sql<{ tenant_id: string; task_id: string; last_sequence: number }[]>`
    SELECT t.tenant_id, t.task_id, t.last_sequence FROM tasks t
    JOIN unnest(${keys.map((k) => k.tenantId)}::text[], ${keys.map((k) => k.taskId)}::uuid[]) AS w(tenant_id, task_id)
      ON t.tenant_id = w.tenant_id AND t.task_id = w.task_id
  `;
  return rows.map((r) => ({ tenantId: r.tenant_id, taskId: r.task_id, lastSequence: Number(r.last_sequence) }));
}
