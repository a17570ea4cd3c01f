import type { Sql } from "../../shared/db/database.js";
import type { TaskKey, TaskRow } from "../model/task.js";

export async function findTask(sql: Sql, key: TaskKey): Promise<TaskRow | undefined> {
  const [row] = await sql<TaskRow[]>`
    SELECT * FROM tasks WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId}
  `;
  return row;
}

export async function findTaskByRequestId(sql: Sql, tenantId: string, requestId: string): Promise<TaskRow | undefined> {
  const [row] = await sql<TaskRow[]>`
    SELECT * FROM tasks WHERE tenant_id = ${tenantId} AND request_id = ${requestId}
  `;
  return row;
}
