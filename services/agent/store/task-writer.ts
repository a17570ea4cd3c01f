// The one writer of task state (DESIGN.md rule 1). Every change to a task —
// creation, claim, progress, completion, cancellation, requeue — goes through
// one of the writer's operations below, each of which in one transaction appends the change's events to
// `task_events` (gapless per-task sequences), updates the `tasks` projection and
// hands the events to the outbox sink (webhooks). After commit it publishes a
// wake-up hint. Nothing else writes `tasks`, except lease bookkeeping
// (`extendLeases`), which changes no observable state.
import type { Sql, Tx } from "../../shared/db/database.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import { currentActor } from "../model/actor.js";
import type { ChangeResult, Decide, Fence, StoredEvent, TaskChange, TaskEventSink } from "../model/change.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import { stateChangeSnapshot } from "../wire/task-json.js";
import { type ClaimTerms, claimTasks, createWorkPeek, selectExpiredInputs, selectExpiredLeases } from "./claim-tasks.js";

export interface TaskWriter {
  /** Inserts a new task (its first event: the state_change to `row.state`),
   * then applies `then` (e.g. a claim) in the same statement. Returns null when
   * the (tenant, request_id) already exists. */
  insert(row: TaskRow, then?: Decide): Promise<{ task: TaskRow; events: StoredEvent[] } | null>;
  /** Locks the task, decides, applies. */
  change(key: TaskKey, decide: Decide, fence?: Fence): Promise<ChangeResult>;
  /** For the runner holding `fence`, whose copy of the task is `current`: the same
   * change in one statement, applied only if the task has not moved on since
   * (same lease, same last event); otherwise it falls back to `change`. */
  changeHeld(current: TaskRow, decide: Decide, fence: Fence): Promise<ChangeResult>;
  /** Claims up to `limit` claimable QUEUED tasks on these terms (the `claim` transition, in SQL). */
  claim(limit: number, terms: ClaimTerms): Promise<TaskRow[]>;
  /** Applies `decide` to up to `limit` tasks whose lease expired. */
  sweepExpiredLeases(limit: number, decide: Decide): Promise<TaskRow[]>;
  /** Applies `decide` to up to `limit` INPUT_REQUIRED tasks whose input request expired. */
  sweepExpiredInputs(limit: number, decide: Decide): Promise<TaskRow[]>;
  /** Extends the leases this owner still holds; returns the lease ids that are still held. */
  extendLeases(owner: string, leaseIds: string[], leaseMs: number): Promise<Set<string>>;
  /** Deletes a task and its events when `allowed(row)`; true when deleted. */
  remove(key: TaskKey, allowed: (task: TaskRow) => void): Promise<boolean>;
}

/** Deadlocks and serialization failures are safe to retry: decisions are pure and re-run on the fresh row. */
async function retryOnConflict<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (attempt >= 3 || (code !== "40P01" && code !== "40001")) throw error;
    }
  }
}

const PATCH_COLUMNS_JSON = new Set([
  "output",
  "error",
  "progress",
  "input_request",
  "artifacts",
  "checkpoint",
  "pending_input",
  "input_answer_ids",
]);

export function createTaskWriter(deps: { sql: Sql; bus: WakeupBus; sink?: TaskEventSink }): TaskWriter {
  const { sql, bus, sink } = deps;

  // Idle polls and sweeps cost one statement (a peek), not a transaction each; 2.5 s: a poll interval and some.
  const peek = createWorkPeek(sql, 2500);
  const jsonOrNull = (value: unknown) => (value === null || value === undefined ? null : sql.json(value as never));

  /** Sequences the drafts after the row's last event and fills state_change snapshots
   * (which carry large fields once only: see `stateChangeSnapshot`). */
  function build(current: TaskRow, change: TaskChange, now: Date): { next: TaskRow; events: StoredEvent[] } {
    const drafts = [...(change.events ?? [])];
    const stateChanged = change.patch.state !== undefined && change.patch.state !== current.state;
    if (stateChanged) drafts.push({ kind: "stateChange", data: {} });
    const first = Number(current.last_sequence) + 1;
    const actor = currentActor();
    const next: TaskRow = {
      ...current,
      ...change.patch,
      last_sequence: first + drafts.length - 1,
      update_time: drafts.length > 0 || stateChanged ? now : current.update_time,
    };
    const events = drafts.map((draft, i): StoredEvent => {
      const sequence = first + i;
      if (draft.kind !== "stateChange") return { sequence, time: now, kind: draft.kind, data: draft.data, actor };
      return { sequence, time: now, kind: "stateChange", data: { state: `TASK_STATE_${next.state}`, task: stateChangeSnapshot(next, sequence) }, actor };
    });
    return { next, events };
  }

  function eventRows(events: StoredEvent[]) {
    return sql.json(
      events.map((e) => ({ sequence: e.sequence, time: e.time.toISOString(), kind: e.kind, data: e.data, actor: e.actor ?? null })) as never,
    );
  }

  function columnsOf(next: TaskRow, change: TaskChange): Record<string, unknown> {
    const columns: Record<string, unknown> = { last_sequence: next.last_sequence, update_time: next.update_time };
    for (const [column, value] of Object.entries(change.patch)) {
      if (value === undefined) continue;
      columns[column] = PATCH_COLUMNS_JSON.has(column) ? jsonOrNull(value) : value;
    }
    return columns;
  }

  async function write(tx: Tx, current: TaskRow, change: TaskChange): Promise<{ task: TaskRow; events: StoredEvent[] }> {
    const { next, events } = build(current, change, new Date());
    const columns = columnsOf(next, change);
    await tx`
      WITH changed AS (
        UPDATE tasks SET ${tx(columns as never)}
        WHERE tenant_id = ${current.tenant_id} AND task_id = ${current.task_id}
        RETURNING 1
      )
      INSERT INTO task_events (tenant_id, task_id, sequence, time, kind, data, actor)
      SELECT ${current.tenant_id}, ${current.task_id}::uuid, e.sequence, e.time, e.kind, e.data, e.actor
      FROM jsonb_to_recordset(${eventRows(events)}::jsonb) AS e(sequence bigint, time timestamptz, kind text, data jsonb, actor text)
    `;
    if (sink && events.length > 0 && sink.wants(next, events)) await sink.append(tx, next, events);
    return { task: next, events };
  }

  function announce(task: TaskRow, events: readonly StoredEvent[]): void {
    if (events.length === 0) return;
    bus.publish("task", task.task_id);
    if (task.state === "QUEUED") bus.publish("queue", task.task_id);
    sink?.afterCommit?.(task, events);
  }

  /** Locks the rows `select` picks, applies `decide` to each, commits, then announces. */
  async function applyToSelected(select: (tx: Tx) => Promise<TaskRow[]>, decide: Decide): Promise<TaskRow[]> {
    const applied = await sql.begin(async (tx) => {
      const done: { task: TaskRow; events: StoredEvent[] }[] = [];
      for (const row of await select(tx)) {
        const change = decide(row);
        if (change) done.push(await write(tx, row, change));
      }
      return done;
    });
    for (const a of applied) announce(a.task, a.events);
    return applied.map((a) => a.task);
  }

  const writer: TaskWriter = {
    async insert(row, then) {
      const created = build({ ...row, last_sequence: 0 }, { patch: {}, events: [{ kind: "stateChange", data: {} }] }, row.create_time);
      const change = then?.(created.next);
      const more = change ? build(created.next, change, row.create_time) : { next: created.next, events: [] };
      const next = more.next;
      const events = [...created.events, ...more.events];
      const values = {
        tenant_id: next.tenant_id,
        task_id: next.task_id,
        agent: next.agent,
        agent_version: next.agent_version,
        state: next.state,
        input: jsonOrNull(next.input),
        labels: sql.json(next.labels),
        artifacts: sql.json(next.artifacts as never),
        webhook: jsonOrNull(next.webhook),
        request_id: next.request_id,
        request_fingerprint: next.request_fingerprint,
        attempt: next.attempt,
        max_attempts: next.max_attempts,
        timeout_ms: Number(next.timeout_ms),
        last_sequence: next.last_sequence,
        create_time: next.create_time,
        start_time: next.start_time,
        update_time: next.update_time,
        run_after: next.run_after,
        lease_owner: next.lease_owner,
        lease_id: next.lease_id,
        lease_expires_at: next.lease_expires_at,
        trace_parent: next.trace_parent ?? null,
      };
      const statement = (q: Sql | Tx) => q`
        WITH created AS (
          INSERT INTO tasks ${q(values as never)}
          ON CONFLICT (tenant_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
          RETURNING task_id
        )
        INSERT INTO task_events (tenant_id, task_id, sequence, time, kind, data, actor)
        SELECT ${next.tenant_id}, created.task_id, e.sequence, e.time, e.kind, e.data, e.actor
        FROM created, jsonb_to_recordset(${eventRows(events)}::jsonb) AS e(sequence bigint, time timestamptz, kind text, data jsonb, actor text)
        RETURNING sequence
      `;
      let inserted: boolean;
      if (sink?.wants(next, events)) {
        inserted = await sql.begin(async (tx) => {
          const rows = await statement(tx);
          if (rows.length > 0) await sink.append(tx, next, events);
          return rows.length > 0;
        });
      } else {
        inserted = (await statement(sql)).length > 0;
      }
      if (!inserted) return null;
      announce(next, events);
      return { task: next, events };
    },

    async change(key, decide, fence) {
      const result = await retryOnConflict(() => sql.begin(async (tx): Promise<ChangeResult> => {
        const [row] = await tx<TaskRow[]>`
          SELECT * FROM tasks WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId} FOR UPDATE
        `;
        if (!row) return { status: "missing" };
        if (fence && (row.lease_id !== fence.leaseId || row.state !== "RUNNING")) return { status: "fenced", task: row };
        const change = decide(row);
        if (!change) return { status: "unchanged", task: row };
        return { status: "changed", ...(await write(tx, row, change)) };
      }));
      if (result.status === "changed") announce(result.task, result.events);
      return result;
    },

    async changeHeld(current, decide, fence) {
      const key = { tenantId: current.tenant_id, taskId: current.task_id };
      if (current.lease_id !== fence.leaseId || current.state !== "RUNNING") return writer.change(key, decide, fence);
      const change = decide(current);
      if (!change) return { status: "unchanged", task: current };
      const { next, events } = build(current, change, new Date());
      // The outbox needs a transaction; so does anything the optimistic check cannot cover.
      if (sink && events.length > 0 && sink.wants(next, events)) return writer.change(key, decide, fence);
      const columns = columnsOf(next, change);
      const [row] = await sql<{ n: number }[]>`
        WITH changed AS (
          UPDATE tasks SET ${sql(columns as never)}
          WHERE tenant_id = ${current.tenant_id} AND task_id = ${current.task_id}
            AND lease_id = ${fence.leaseId} AND state = 'RUNNING' AND last_sequence = ${Number(current.last_sequence)}
          RETURNING 1
        ), appended AS (
          INSERT INTO task_events (tenant_id, task_id, sequence, time, kind, data, actor)
          SELECT ${current.tenant_id}, ${current.task_id}::uuid, e.sequence, e.time, e.kind, e.data, e.actor
          FROM changed, jsonb_to_recordset(${eventRows(events)}::jsonb) AS e(sequence bigint, time timestamptz, kind text, data jsonb, actor text)
          RETURNING 1
        )
        SELECT count(*)::int AS n FROM changed
      `;
      if (!row || Number(row.n) === 0) return writer.change(key, decide, fence);
      announce(next, events);
      return { status: "changed", task: next, events };
    },

    async claim(limit, terms) {
      if (!(await peek.mayClaim())) return [];
      const opts = { now: new Date(), actor: currentActor() ?? null };
      // One statement. With an outbox it runs in a transaction (BEGIN and COMMIT the only other
      // round trips): which claimed tasks' events it wants is known only once they are claimed.
      const claimed = sink
        ? await sql.begin(async (tx) => {
            const rows = await claimTasks(tx, limit, terms, opts);
            for (const c of rows) if (sink.wants(c.task, c.events)) await sink.append(tx, c.task, c.events);
            return rows;
          })
        : await claimTasks(sql, limit, terms, opts);
      peek.claimed(claimed.length);
      for (const c of claimed) announce(c.task, c.events);
      return claimed.map((c) => c.task);
    },

    // SKIP LOCKED: replicas sweeping at once share the work instead of queueing on each other.
    sweepExpiredLeases: async (limit, decide) =>
      (await peek.maySweep("expiredLeases")) ? applyToSelected((tx) => selectExpiredLeases(tx, limit), decide) : [],
    sweepExpiredInputs: async (limit, decide) =>
      (await peek.maySweep("expiredInputs")) ? applyToSelected((tx) => selectExpiredInputs(tx, limit), decide) : [],

    async extendLeases(owner, leaseIds, leaseMs) {
      if (leaseIds.length === 0) return new Set();
      // Rows are locked in key order, so two multi-row lockers can never deadlock.
      const rows = await sql<{ lease_id: string }[]>`
        WITH held AS (
          SELECT tenant_id, task_id FROM tasks
          WHERE lease_owner = ${owner} AND lease_id = ANY(${leaseIds}::uuid[]) AND state = 'RUNNING'
          ORDER BY tenant_id, task_id
          FOR UPDATE
        )
        UPDATE tasks SET lease_expires_at = now() + ${leaseMs} * interval '1 millisecond'
        FROM held WHERE tasks.tenant_id = held.tenant_id AND tasks.task_id = held.task_id
        RETURNING tasks.lease_id
      `;
      return new Set(rows.map((r) => r.lease_id));
    },

    async remove(key, allowed) {
      const deleted = await sql.begin(async (tx) => {
        const [row] = await tx<TaskRow[]>`
          SELECT * FROM tasks WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId} FOR UPDATE
        `;
        if (!row) return false;
        allowed(row);
        await tx`DELETE FROM task_events WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId}`;
        await tx`DELETE FROM tasks WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId}`;
        return true;
      });
      if (deleted) bus.publish("task", key.taskId);
      return deleted;
    },
  };
  return writer;
}

