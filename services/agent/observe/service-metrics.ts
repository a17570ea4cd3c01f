// RPC, task, database and process metrics of the agent service (prom-client),
// registered beside the stream metrics in the registry served at GET /metrics.
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from "prom-client";
import type { Sql } from "../../shared/db/database.js";

export interface ServiceMetrics {
  rpcs: Counter<"service" | "method" | "code">;
  rpcSeconds: Histogram<"service" | "method">;
  tasksCreated: Counter<"agent">;
  tasksFinished: Counter<"agent" | "state">;
  queueSeconds: Histogram<"agent">;
  runSeconds: Histogram<"agent" | "state">;
  attemptsRetried: Counter<"agent" | "reason">;
  leasesLost: Counter;
  insertBatchRows: Histogram;
  appendBatchChanges: Histogram;
  http2Connections: Counter<"server">;
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const LONG_SECONDS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

export function createServiceMetrics(deps: {
  registry: Registry;
  sql: Sql;
  /** Postgres connections this process may open (AGENTD_DB_MAX_CONNECTIONS; 1 when embedded). */
  poolMax: number;
}): ServiceMetrics {
  const registers = [deps.registry];
  collectDefaultMetrics({ register: deps.registry });
  const { sql } = deps;

  new Gauge({
    name: "agentd_tasks_queued",
    help: "Tasks waiting in the queue (all replicas, all tenants), by agent; read from the database at each scrape.",
    labelNames: ["agent"],
    registers,
    async collect() {
      this.reset();
      // One cheap grouped read over the queued tasks (partial index tasks_queued).
      const rows = await sql<{ agent: string; n: number }[]>`
        SELECT agent, count(*)::int AS n FROM tasks WHERE state = 'QUEUED' GROUP BY agent`.catch(() => []);
      for (const r of rows) this.set({ agent: r.agent }, Number(r.n));
    },
  });
  new Gauge({
    name: "agentd_db_pool_max_connections",
    help: "Postgres connections this process may open.",
    registers,
  }).set(deps.poolMax);
  new Gauge({
    name: "agentd_db_up",
    help: "1 when a trivial query succeeded at this scrape, 0 when the database could not be reached.",
    registers,
    async collect() {
      this.set(
        await sql`SELECT 1`.then(
          () => 1,
          () => 0,
        ),
      );
    },
  });
  new Gauge({
    name: "agentd_db_ping_seconds",
    help: "Time a trivial query took at this scrape (waiting for a free pool connection included).",
    registers,
    async collect() {
      const start = performance.now();
      await sql`SELECT 1`.catch(() => {});
      this.set((performance.now() - start) / 1000);
    },
  });

  return {
    rpcs: new Counter({
      name: "agentd_rpcs_total",
      help: "RPCs handled, by service, method and final code (ok, canceled, invalid_argument, …).",
      labelNames: ["service", "method", "code"],
      registers,
    }),
    rpcSeconds: new Histogram({
      name: "agentd_rpc_duration_seconds",
      help: "RPC duration until the last response message (streams: until they end).",
      labelNames: ["service", "method"],
      buckets: SECONDS,
      registers,
    }),
    tasksCreated: new Counter({
      name: "agentd_tasks_created_total",
      help: "Tasks created in this process, by agent.",
      labelNames: ["agent"],
      registers,
    }),
    tasksFinished: new Counter({
      name: "agentd_tasks_finished_total",
      help: "Tasks that ended (state SUCCEEDED, FAILED or CANCELED) by a write of this process, by agent.",
      labelNames: ["agent", "state"],
      registers,
    }),
    queueSeconds: new Histogram({
      name: "agentd_task_queue_seconds",
      help: "From the moment a queued task could be claimed to its claim by a runner of this process.",
      labelNames: ["agent"],
      buckets: SECONDS,
      registers,
    }),
    runSeconds: new Histogram({
      name: "agentd_task_run_seconds",
      help: "From a task's first start to its end, by agent and final state.",
      labelNames: ["agent", "state"],
      buckets: LONG_SECONDS,
      registers,
    }),
    attemptsRetried: new Counter({
      name: "agentd_task_attempts_retried_total",
      help: "Attempts given back to the queue to run again, by agent and reason: lease_lost (its runner stopped renewing the lease), store_outage (the task store was unreachable), shutdown (its runner shut down).",
      labelNames: ["agent", "reason"],
      registers,
    }),
    insertBatchRows: new Histogram({
      name: "agentd_task_insert_batch_rows",
      help: "New tasks written by one insert statement (group commit: calls that arrived while earlier inserts were in flight).",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    appendBatchChanges: new Histogram({
      name: "agentd_task_append_batch_changes",
      help: "Runners' changes (deltas, progress, tool calls, completions) written by one statement (group commit across tasks).",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    http2Connections: new Counter({
      name: "agentd_http2_connections_total",
      help: "HTTP/2 connections on the one port by the server that took them: grpc-js (a first request in binary gRPC, the default AGENTD_GRPC_SERVER) or connect (connect-node: everything else, and every connection with AGENTD_GRPC_SERVER=connect).",
      labelNames: ["server"],
      registers,
    }),
    leasesLost: new Counter({
      name: "agentd_task_leases_lost_total",
      help: "Task leases that expired without a heartbeat (a runner died or stalled), found by this process's sweep.",
      registers,
    }),
  };
}
