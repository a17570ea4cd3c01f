// Task metrics and trace spans, taken at the one writer of task state: a
// wrapper around the TaskWriter, so the writer and the runner stay as they are.
// - insert: counts the task and stamps it with the creating RPC's trace context
//   (`trace_parent`), so whichever replica runs it joins the same trace;
// - claim: the queue wait (from when the task could be claimed), as a metric and a span;
// - every applied change: tasks that ended, and their run time;
// - the lease sweep: leases lost;
// - every change that gives a running attempt back to the queue: attempts retried, by reason.
import { SpanKind } from "@opentelemetry/api";
import { contextOf, inSpan, traceparentOf, tracer } from "../../shared/tracing.js";
import { withoutActor } from "../model/actor.js";
import type { ChangeResult, Decide, RetryReason, StoredEvent } from "../model/change.js";
import { isTerminal, stateOfJsonName, type TaskRow, type TaskStateName } from "../model/task.js";
import type { TaskWriter } from "../store/task-writer.js";
import type { ServiceMetrics } from "./service-metrics.js";

export function observeTaskWriter(writer: TaskWriter, metrics: ServiceMetrics): TaskWriter {
  /** Counts a task that entered `state` at `time`, if that ends it. */
  function entered(task: TaskRow, state: TaskStateName, time: Date): void {
    if (!isTerminal(state)) return;
    metrics.tasksFinished.inc({ agent: task.agent, state });
    if (task.start_time) {
      const end = task.end_time ?? time;
      metrics.runSeconds.observe(
        { agent: task.agent, state },
        Math.max(0, end.getTime() - task.start_time.getTime()) / 1000,
      );
    }
  }
  function ended(task: TaskRow, events: readonly StoredEvent[]): void {
    for (const event of events)
      if (event.kind === "stateChange") entered(task, stateOfJsonName(event.data.state), event.time);
  }
  /** `decide`, noting in `reasons` why each task it sends back to the queue goes (the last
   * decision per task wins, as the writer may decide again after a conflict). */
  const noting =
    (decide: Decide, reasons: Map<string, RetryReason>): Decide =>
    (task) => {
      const change = decide(task);
      if (change?.retry) reasons.set(task.task_id, change.retry);
      else reasons.delete(task.task_id);
      return change;
    };
  function retried(task: TaskRow, reasons: Map<string, RetryReason>): void {
    const reason = reasons.get(task.task_id);
    if (reason && task.state === "QUEUED") metrics.attemptsRetried.inc({ agent: task.agent, reason });
  }
  const changed = (result: ChangeResult, reasons: Map<string, RetryReason>): ChangeResult => {
    if (result.status === "changed") {
      retried(result.task, reasons);
      ended(result.task, result.events);
    }
    return result;
  };
  const finishedRows = (rows: TaskRow[]) => {
    for (const row of rows) entered(row, row.state, row.end_time ?? new Date());
    return rows;
  };

  return {
    ...writer,
    async insert(row, then) {
      const result = await writer.insert({ ...row, trace_parent: row.trace_parent ?? traceparentOf() }, then);
      if (result) {
        metrics.tasksCreated.inc({ agent: row.agent });
        queued([result.task].filter((t) => t.state === "RUNNING"));
        ended(result.task, result.events);
      }
      return result;
    },
    async change(key, decide, fence) {
      const reasons = new Map<string, RetryReason>();
      return changed(await writer.change(key, noting(decide, reasons), fence), reasons);
    },
    async changeHeld(current, decide, fence) {
      const reasons = new Map<string, RetryReason>();
      return changed(await writer.changeHeld(current, noting(decide, reasons), fence), reasons);
    },
    async claim(limit, decide) {
      return queued(await writer.claim(limit, decide));
    },
    async sweepExpiredLeases(limit, decide) {
      const reasons = new Map<string, RetryReason>();
      const rows = await writer.sweepExpiredLeases(limit, noting(decide, reasons));
      metrics.leasesLost.inc(rows.length);
      for (const row of rows) retried(row, reasons);
      return finishedRows(rows);
    },
    sweepExpiredInputs: async (limit, decide) => finishedRows(await writer.sweepExpiredInputs(limit, decide)),
  };

  /** Claimed tasks: how long each waited once it could run. */
  function queued(rows: TaskRow[]): TaskRow[] {
    const now = new Date();
    for (const row of rows) {
      const since = row.run_after.getTime() > row.create_time.getTime() ? row.run_after : row.create_time;
      metrics.queueSeconds.observe({ agent: row.agent }, Math.max(0, now.getTime() - since.getTime()) / 1000);
      if (row.trace_parent) {
        tracer()
          .startSpan(
            "task.queue",
            {
              kind: SpanKind.INTERNAL,
              startTime: since,
              attributes: { "agentd.task_id": row.task_id, "agentd.agent": row.agent, "agentd.attempt": row.attempt },
            },
            contextOf(row.trace_parent),
          )
          .end(now);
      }
    }
    return rows;
  }
}

/** Runs one attempt of a task inside an `agent.run` span of the task's trace. */
export function inRunSpan<T extends TaskRow>(task: TaskRow, run: () => Promise<T>): Promise<T> {
  // The agent's own events are the service's, even when an RPC (Run) started the attempt.
  if (!task.trace_parent) return withoutActor(run);
  return withoutActor(() =>
    inSpan(
      `agent.run ${task.agent}`,
      {
        parent: contextOf(task.trace_parent),
        attributes: { "agentd.task_id": task.task_id, "agentd.agent": task.agent, "agentd.attempt": task.attempt },
      },
      async (span) => {
        const row = await run();
        span.setAttribute("agentd.state", row.state);
        return row;
      },
    ),
  );
}
