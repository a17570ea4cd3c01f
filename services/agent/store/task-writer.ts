// The one writer of task state (DESIGN.md rule 1). Every change to a task —
// creation, claim, progress, completion, cancellation, requeue — goes through
// one of the writer's operations below, each of which in one transaction appends the change's events to
// `task_events` (gapless per-task sequences), updates the `tasks` projection and
// hands the events to the outbox sink (webhooks). After commit it publishes a
// wake-up hint. Nothing else writes `tasks`, except lease bookkeeping
// (`extendLeases`), which changes no observable state. The operations are module-level
// functions over the writer's deps; the event append they share is in append-events.ts.
import type { Sql, Tx } from "../../shared/db/database.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import { currentActor } from "../model/actor.js";
import type { ChangeResult, Decide, Fence, StoredEvent, TaskEventSink } from "../model/change.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import { announce, build, retryOnConflict, type WriterDeps, write } from "./append-events.js";
import { appendHeld, type HeldChange } from "./append-held.js";
import {
  type ClaimedTask,
  type ClaimTerms,
  claimTasks,
  createWorkPeek,
  selectExpiredInputs,
  selectExpiredLeases,
} from "./claim-tasks.js";
import { createGroupCommit } from "./group-commit.js";
import { insertTasks, type NewTaskRows } from "./insert-tasks.js";

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

/** How new tasks, and runners' changes to the tasks they hold, are grouped into shared statements (store/group-commit.ts). */
export interface GroupCommitTerms {
  /** The most new tasks, or runners' changes, in one statement; 1 writes each alone. */
  maxRows: number;
  /** Statements of each kind in flight at once. */
  maxInFlight: number;
  /** Told the size of each batch of new tasks written (a metric). */
  written?: (rows: number) => void;
  /** Told the size of each batch of runners' changes written (a metric). */
  appended?: (changes: number) => void;
}

export function createTaskWriter(deps: {
  sql: Sql;
  bus: WakeupBus;
  sink?: TaskEventSink;
  groupCommit?: GroupCommitTerms;
  /** Told of every committed write's events, before its wake-up hint: the event hub's `committed`. */
  committed?: WriterDeps["committed"];
}): TaskWriter {
  // Idle polls and sweeps cost one statement (a peek), not a transaction each; 2.5 s: a poll interval and some.
  const peek = createWorkPeek(deps.sql, 2500);
  const claimRoute: ClaimRoute = { transactionFirst: false };
  const w: WriterDeps = {
    sql: deps.sql,
    bus: deps.bus,
    sink: deps.sink,
    expiryWritten: () => peek.forget(),
    committed: deps.committed,
  };
  const groupInsert = createGroupCommit<NewTaskRows, boolean>({
    write: (batch) => {
      deps.groupCommit?.written?.(batch.length);
      return insertTasks(deps.sql, deps.sink, batch);
    },
    maxItems: deps.groupCommit?.maxRows ?? 64,
    maxInFlight: deps.groupCommit?.maxInFlight ?? 2,
  });
  const groupAppend = createGroupCommit<HeldChange, boolean>({
    write: (batch) => {
      deps.groupCommit?.appended?.(batch.length);
      return appendHeld(deps.sql, batch);
    },
    maxItems: deps.groupCommit?.maxRows ?? 64,
    maxInFlight: deps.groupCommit?.maxInFlight ?? 2,
    // A task's runner writes one change at a time; two of one task in one statement could not both apply.
    keyOf: ({ current }) => `${current.tenant_id}/${current.task_id}`,
  });
  return {
    insert: (row, then) => insertTask(w, groupInsert, row, then),
    change: (key, decide, fence) => changeTask(w, key, decide, fence),
    changeHeld: (current, decide, fence) => changeHeldTask(w, groupAppend, current, decide, fence),
    claim: (limit, terms) => claimSome(w, peek, claimRoute, limit, terms),
    // SKIP LOCKED: replicas sweeping at once share the work instead of queueing on each other.
    sweepExpiredLeases: async (limit, decide) =>
      (await peek.maySweep("expiredLeases")) ? applyToSelected(w, (tx) => selectExpiredLeases(tx, limit), decide) : [],
    sweepExpiredInputs: async (limit, decide) =>
      (await peek.maySweep("expiredInputs")) ? applyToSelected(w, (tx) => selectExpiredInputs(tx, limit), decide) : [],
    extendLeases: (owner, leaseIds, leaseMs) => extendLeases(w, owner, leaseIds, leaseMs),
    remove: (key, allowed) => removeTask(w, key, allowed),
  };
}

/** Builds the new task's first events here, in the caller's context (its actor), and hands the
 * row to the group commit, which writes it with whatever else arrived meanwhile. */
async function insertTask(
  w: WriterDeps,
  groupInsert: (rows: NewTaskRows) => Promise<boolean>,
  row: TaskRow,
  then?: Decide,
): Promise<{ task: TaskRow; events: StoredEvent[] } | null> {
  const created = build(
    { ...row, last_sequence: 0 },
    { patch: {}, events: [{ kind: "stateChange", data: {} }] },
    row.create_time,
  );
  const change = then?.(created.next);
  const more = change ? build(created.next, change, row.create_time) : { next: created.next, events: [] };
  const task = more.next;
  const events = [...created.events, ...more.events];
  if (!(await groupInsert({ task, events }))) return null;
  announce(w, task, events);
  return { task, events };
}

async function changeTask(w: WriterDeps, key: TaskKey, decide: Decide, fence?: Fence): Promise<ChangeResult> {
  const result = await retryOnConflict(() =>
    w.sql.begin(async (tx): Promise<ChangeResult> => {
      const [row] = await tx<TaskRow[]>`
      SELECT * FROM tasks WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId} FOR UPDATE
    `;
      if (!row) return { status: "missing" };
      if (fence && (row.lease_id !== fence.leaseId || row.state !== "RUNNING")) return { status: "fenced", task: row };
      const change = decide(row);
      if (!change) return { status: "unchanged", task: row };
      return { status: "changed", ...(await write(w, tx, row, change)) };
    }),
  );
  if (result.status === "changed") announce(w, result.task, result.events);
  return result;
}

async function changeHeldTask(
  w: WriterDeps,
  groupAppend: (change: HeldChange) => Promise<boolean>,
  current: TaskRow,
  decide: Decide,
  fence: Fence,
): Promise<ChangeResult> {
  const { sink } = w;
  const key = { tenantId: current.tenant_id, taskId: current.task_id };
  if (current.lease_id !== fence.leaseId || current.state !== "RUNNING") return changeTask(w, key, decide, fence);
  const change = decide(current);
  if (!change) return { status: "unchanged", task: current };
  const { next, events } = build(current, change, new Date());
  // The outbox needs a transaction; so does anything the optimistic check cannot cover.
  if (sink && events.length > 0 && sink.wants(next, events)) return changeTask(w, key, decide, fence);
  // Written with other runners' changes that arrive meanwhile (group commit), each applied only if
  // its task has not moved on.
  const applied = await groupAppend({ current, next, patch: change.patch, events, leaseId: fence.leaseId });
  if (!applied) return changeTask(w, key, decide, fence);
  announce(w, next, events);
  return { status: "changed", task: next, events };
}

/**
 * Which way the next claim starts, learnt from the last: a tenant whose endpoints subscribe to
 * task.running makes every claim of its tasks loud, and then the one-statement attempt before
 * the transaction is a wasted round trip.
 */
interface ClaimRoute {
  transactionFirst: boolean;
}

async function claimSome(
  w: WriterDeps,
  peek: ReturnType<typeof createWorkPeek>,
  route: ClaimRoute,
  limit: number,
  terms: ClaimTerms,
): Promise<TaskRow[]> {
  const { sql, sink } = w;
  if (!(await peek.mayClaim())) return [];
  const opts = { now: new Date(), actor: currentActor() ?? null };
  // With an outbox, a claim whose task.running event it wants runs in a transaction (BEGIN and
  // COMMIT two more round trips), which writes the delivery too. The outbox says in SQL which claims
  // need no delivery (no task webhook, no tenant endpoint for task.running): those are claimed in
  // one autocommitted statement and only the others take the transaction. Each claim starts the
  // way that would have been cheapest for the last one (`route`).
  // The transaction claims every task, quiet or not, and counts the loud ones for `route`.
  const inTx = (n: number, sink: TaskEventSink) =>
    sql.begin(async (tx) => {
      const claim = await claimTasks(tx, n, terms, { ...opts, quietWhere: sink.quietClaimWhere, claimLoud: true });
      for (const c of claim.claimed) if (sink.wants(c.task, c.events)) await sink.append(tx, c.task, c.events);
      return claim;
    });
  let claimed: ClaimedTask[];
  if (!sink) claimed = (await claimTasks(sql, limit, terms, opts)).claimed;
  else if (route.transactionFirst) {
    const claim = await inTx(limit, sink);
    claimed = claim.claimed;
    if (claimed.length > 0) route.transactionFirst = claim.loud > 0;
  } else {
    const first = await claimTasks(sql, limit, terms, { ...opts, quietWhere: sink.quietClaimWhere });
    claimed = first.claimed;
    route.transactionFirst = first.loud > 0;
    if (first.loud > 0) {
      // Announce what is already committed even if the transaction fails.
      const loud = await inTx(limit - claimed.length, sink).catch((error) => {
        if (claimed.length === 0) throw error;
        return { claimed: [] };
      });
      claimed = [...claimed, ...loud.claimed];
    }
  }
  peek.claimed(claimed.length);
  for (const c of claimed) announce(w, c.task, c.events);
  return claimed.map((c) => c.task);
}

/** Locks the rows `select` picks, applies `decide` to each, commits, then announces. */
async function applyToSelected(
  w: WriterDeps,
  select: (tx: Tx) => Promise<TaskRow[]>,
  decide: Decide,
): Promise<TaskRow[]> {
  const applied = await w.sql.begin(async (tx) => {
    const done: { task: TaskRow; events: StoredEvent[] }[] = [];
    for (const row of await select(tx)) {
      const change = decide(row);
      if (change) done.push(await write(w, tx, row, change));
    }
    return done;
  });
  for (const a of applied) announce(w, a.task, a.events);
  return applied.map((a) => a.task);
}

async function extendLeases(w: WriterDeps, owner: string, leaseIds: string[], leaseMs: number): Promise<Set<string>> {
  if (leaseIds.length === 0) return new Set();
  // Rows are locked in key order, so two multi-row lockers can never deadlock.
  const rows = await w.sql<{ lease_id: string }[]>`
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
}

async function removeTask(w: WriterDeps, key: TaskKey, allowed: (task: TaskRow) => void): Promise<boolean> {
  const deleted = await w.sql.begin(async (tx) => {
    const [row] = await tx<TaskRow[]>`
      SELECT * FROM tasks WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId} FOR UPDATE
    `;
    if (!row) return false;
    allowed(row);
    await tx`DELETE FROM task_events WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId}`;
    await tx`DELETE FROM tasks WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId}`;
    return true;
  });
  if (deleted) w.bus.publish("task", key.taskId);
  return deleted;
}
