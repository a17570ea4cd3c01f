import type { Sql } from "../../shared/db/database.js";
import type { TaskRow, TaskStateName } from "../model/task.js";

export interface TaskFilter {
  states: TaskStateName[];
  agent: string;
  labels: Record<string, string>;
}

/** A page of the tenant's tasks, newest first, strictly older than `beforeTaskId`. */
export async function listTasks(
  sql: Sql,
  tenantId: string,
  filter: TaskFilter,
  page: { beforeTaskId: string | null; limit: number },
): Promise<TaskRow[]> {
  return sql<TaskRow[]>`
    SELECT * FROM tasks
    WHERE tenant_id = ${tenantId}
      ${page.beforeTaskId ? sql`AND task_id < ${page.beforeTaskId}::uuid` : sql``}
      ${filter.states.length > 0 ? sql`AND state = ANY(${filter.states}::text[])` : sql``}
      ${filter.agent ? sql`AND agent = ${filter.agent}` : sql``}
      ${Object.keys(filter.labels).length > 0 ? sql`AND labels @> ${sql.json(filter.labels)}` : sql``}
    ORDER BY task_id DESC
    LIMIT ${page.limit}
  `;
}
