// Foundation benchmark (issue 2): on one server and database, measured by a
// grpc-js client with 64 calls in flight:
//   1. Run of the simulate agent with no work, against a raw unary call through
//      the same server stack (grpc.health.v1 Check: no auth, no database);
//   2. CreateTask accepts per second, against the rate of a minimal single-row
//      INSERT through the same driver and pool (the durable-write limit).
// Usage: npm run bench -- foundation [--seconds N]   (DATABASE_URL picks real Postgres)
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { newId } from "../services/shared/ids.js";
import { formatRow, type LoadResult, load, startBenchService } from "./support.js";

const seconds = Number(process.argv[process.argv.indexOf("--seconds") + 1] ?? 5) || 5;
const IN_FLIGHT = 64;

type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void;

function clients(port: number) {
  const definition = protoLoader.loadSync(
    ["agentd/v1/agent_service.proto", "agentd/v1/task_service.proto", "grpc/health/v1/health.proto"],
    {
      includeDirs: [join(import.meta.dirname, "../proto")],
      longs: String,
      enums: String,
      defaults: false,
      oneofs: true,
    },
  );
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    agentd: { v1: { AgentService: grpc.ServiceClientConstructor; TaskService: grpc.ServiceClientConstructor } };
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const address = `127.0.0.1:${port}`;
  const creds = grpc.credentials.createInsecure();
  return {
    agents: new pkg.agentd.v1.AgentService(address, creds) as unknown as Record<string, Unary> & grpc.Client,
    tasks: new pkg.agentd.v1.TaskService(address, creds) as unknown as Record<string, Unary> & grpc.Client,
    health: new pkg.grpc.health.v1.Health(address, creds) as unknown as Record<string, Unary> & grpc.Client,
  };
}

function call(fn: Unary, self: grpc.Client, req: object, md: grpc.Metadata): Promise<unknown> {
  return new Promise((resolve, reject) => fn.call(self, req, md, (err, res) => (err ? reject(err) : resolve(res))));
}

async function main() {
  // Runner concurrency 0: CreateTask measures accepting work, not running it.
  const bench = await startBenchService({ runnerConcurrency: 0, maxConcurrentRuns: 1024 });
  const c = clients(bench.port);
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${bench.key}`);
  const results: LoadResult[] = [];
  try {
    results.push(
      await load("raw unary (Health.Check)", () => call(c.health.Check!, c.health, {}, new grpc.Metadata()), {
        inFlight: IN_FLIGHT,
        seconds,
      }),
    );
    results.push(
      await load(
        "Run (simulate, no work)",
        async () => {
          const res = (await call(
            c.agents.Run!,
            c.agents,
            { agent: "simulate", input: { structValue: { fields: { steps: { numberValue: 0 } } } } },
            md,
          )) as {
            task: { state: string };
          };
          if (res.task.state !== "TASK_STATE_SUCCEEDED") throw new Error(`task ended ${res.task.state}`);
        },
        { inFlight: IN_FLIGHT, seconds },
      ),
    );
    await bench.db
      .sql`CREATE TABLE bench_inserts (tenant_id text, id uuid, payload jsonb, created timestamptz DEFAULT now(), PRIMARY KEY (tenant_id, id))`;
    results.push(
      await load(
        "INSERT one row (driver limit)",
        () =>
          bench.db
            .sql`INSERT INTO bench_inserts (tenant_id, id, payload) VALUES ('bench', ${newId()}, ${bench.db.sql.json({ steps: 0 })})`,
        {
          inFlight: IN_FLIGHT,
          seconds,
        },
      ),
    );
    results.push(
      await load(
        "CreateTask (accepted, durable)",
        () =>
          call(
            c.tasks.CreateTask!,
            c.tasks,
            { agent: "simulate", input: { structValue: { fields: { steps: { numberValue: 0 } } } } },
            md,
          ),
        { inFlight: IN_FLIGHT, seconds },
      ),
    );
  } finally {
    c.agents.close();
    c.tasks.close();
    c.health.close();
    await bench.close();
  }
  const [echo, run, insert, create] = results as [LoadResult, LoadResult, LoadResult, LoadResult];
  const lines = [
    `### Foundation — ${bench.mode === "postgres" ? "Postgres (DATABASE_URL)" : "embedded PGlite"}`,
    "",
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; grpc-js client, ${IN_FLIGHT} calls in flight, ${seconds} s per row after 1 s warm-up, client and server in one process.`,
    "",
    "| load | per second | p50 ms | p99 ms | errors |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...results.map(formatRow),
    "",
    `- Run / raw unary throughput: **${(run.perSecond / echo.perSecond).toFixed(2)}** (aim ≥ 0.5); p50 ${run.p50Ms.toFixed(1)} vs ${echo.p50Ms.toFixed(1)} ms, p99 ${run.p99Ms.toFixed(1)} vs ${echo.p99Ms.toFixed(1)} ms.`,
    `- CreateTask / single-row INSERT: **${(create.perSecond / insert.perSecond).toFixed(2)}** (aim ≥ 0.5).`,
    "",
  ];
  console.log(lines.join("\n"));
}

await main();
