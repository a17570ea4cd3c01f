// Streaming metrics (prom-client), in a registry of their own so that several
// services can live in one process (tests, `agentd dev`). Served at GET /metrics.
import { Counter, Gauge, Registry } from "prom-client";

export type StreamKind = "watch_task" | "run_stream" | "converse" | "sse";

export interface StreamMetrics {
  registry: Registry;
  /** Reads of `task_events` by the hub: `tail` (one shared read per new batch of a
   * watched task) or `catch_up` (a watcher behind the shared window reads for itself). */
  logReads: Counter<"reader">;
  /** Batched polls of watched tasks' `last_sequence` (the fallback when a wake-up is lost). */
  polls: Counter;
  open: Gauge<"kind">;
  rejected: Counter<"limit">;
  watchedTasks: Gauge;
}

export function createStreamMetrics(registry = new Registry()): StreamMetrics {
  const registers = [registry];
  return {
    registry,
    logReads: new Counter({
      name: "agentd_stream_log_reads_total",
      help: "Reads of the task event log by streams: tail (shared by every watcher of a task) or catch_up (one watcher behind the window).",
      labelNames: ["reader"],
      registers,
    }),
    polls: new Counter({
      name: "agentd_stream_polls_total",
      help: "Batched polls of the watched tasks' newest sequence (fallback for lost wake-ups).",
      registers,
    }),
    open: new Gauge({
      name: "agentd_streams_open",
      help: "Open streams in this process, by kind (watch_task, run_stream, converse, sse).",
      labelNames: ["kind"],
      registers,
    }),
    rejected: new Counter({
      name: "agentd_streams_rejected_total",
      help: "Streams refused with RESOURCE_EXHAUSTED, by limit (connection, tenant).",
      labelNames: ["limit"],
      registers,
    }),
    watchedTasks: new Gauge({
      name: "agentd_stream_watched_tasks",
      help: "Tasks with at least one watcher in this process.",
      registers,
    }),
  };
}
