// The vocabulary of a change to a task: the events it appends, the projection
// patch, the pure decision that makes it, the fence that guards it, and what the
// writer (store/task-writer.ts) answers. Shared by the use cases (tasks/), the
// runner, the writer and the outbox.
import type { JsonObject } from "@bufbuild/protobuf";
import type { Tx } from "../../shared/db/database.js";
import type { TaskRow, TaskStateJsonName } from "./task.js";

/** The data of a state_change (`StateChange` in proto3 JSON): the state entered, and the task
 * right after the change (the writer fills both: wire/task-json.ts `stateChangeSnapshot`). */
export type StateChangeData = JsonObject & { state: TaskStateJsonName; task: JsonObject };

/** The data of each kind of event, in proto3 JSON. Only the fields code reads are spelled out. */
interface EventData {
  stateChange: StateChangeData;
  progress: JsonObject;
  delta: JsonObject;
  toolCall: JsonObject;
  inputRequest: JsonObject;
  artifact: JsonObject;
  log: JsonObject;
}

/** Event kinds, named as the `TaskEvent.event` oneof cases in proto3 JSON. */
export type EventKind = keyof EventData;

/** An event to append. A state_change is the writer's to fill: its draft's data is ignored. */
export interface EventDraft {
  kind: EventKind;
  data: JsonObject;
}

/** A stored event, as `task_events` holds it: one variant per kind, told apart by `kind`. */
export type StoredEvent = {
  [K in EventKind]: {
    sequence: number;
    time: Date;
    kind: K;
    data: EventData[K];
    /** Id of the API key whose RPC wrote the event; null when the service wrote it on its own. */
    actor?: string | null;
  };
}[EventKind];

export type TaskPatch = Partial<
  Pick<
    TaskRow,
    | "state"
    | "output"
    | "error"
    | "progress"
    | "input_request"
    | "artifacts"
    | "attempt"
    | "start_time"
    | "end_time"
    | "run_after"
    | "lease_owner"
    | "lease_id"
    | "lease_expires_at"
    | "checkpoint"
    | "pending_input"
    | "input_expires_at"
    | "input_answer_ids"
  >
>;

/** What a change does: new projection values and events to append. When
 * `patch.state` differs from the current state, the writer appends the
 * state_change event (with the snapshot after the change) last. */
export interface TaskChange {
  patch: TaskPatch;
  events?: EventDraft[];
  /** Set when the change gives a running attempt back to the queue to run again: why
   * (the attempts-retried metric's `reason`; the writer itself ignores it). */
  retry?: RetryReason;
}

/** Why a running task went back to the queue: its runner stopped renewing the lease,
 * the task store was unreachable, or its runner shut down. */
export type RetryReason = "lease_lost" | "store_outage" | "shutdown";

/** Decides a change from the locked current row: pure; may throw to refuse,
 * or return null when there is nothing to do. */
export type Decide = (task: TaskRow) => TaskChange | null;

/** A runner's claim on the current attempt. A write carrying a fence applies
 * only while that claim still holds (DESIGN.md rule 4). */
export interface Fence {
  leaseId: string;
}

/** Receives every appended event inside the writing transaction: the
 * transactional outbox for webhooks. */
export interface TaskEventSink {
  /** Whether any of these events may need a write (lets the writer skip a transaction). */
  wants(task: TaskRow, events: readonly StoredEvent[]): boolean;
  append(tx: Tx, task: TaskRow, events: readonly StoredEvent[]): Promise<void>;
  /** Called after the transaction that appended `events` committed (e.g. to wake the notifiers). Must not throw. */
  afterCommit?(task: TaskRow, events: readonly StoredEvent[]): void;
  /** SQL on the task row `t` that holds when the task's claim (its stateChange to RUNNING) needs no
   * write here, read in the claim's own snapshot. Such tasks are claimed in one autocommitted
   * statement, without a transaction (store/task-writer.ts `claimSome`); the others as before. */
  readonly quietClaimWhere: string;
}

export type ChangeResult =
  | { status: "changed"; task: TaskRow; events: StoredEvent[] }
  | { status: "unchanged"; task: TaskRow }
  | { status: "fenced"; task: TaskRow }
  | { status: "missing" };
