// Idle cost (issue 13 part 5): statements per second that an idle `agentd serve`
// sends to Postgres, counted on the wire by a proxy (test/support/statement-counter.ts),
// with default settings. Postgres only (DATABASE_URL); embedded has no other process to load.
// `--waiters N`: the same, while N clients each long-poll a task that stands still with
// `WaitTask` (60 s calls, one after another, as a client that waits for a long job does), with
// the runner off so the tasks stay queued; what N waits cost when nothing happens.
// `npm run bench -- idle [--seconds N] [--waiters N]`.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import postgres from "postgres";
import { TaskService } from "../gen/agentd/v1/task_service_pb.js";
import { value } from "../test/support/json.js";
import { startStatementCounter } from "../test/support/statement-counter.js";
import { keyedBenchDatabase, keyedGrpcTransport, numberArg } from "./support.js";

const adminUrl = process.env.DATABASE_URL;
const secondsArg = process.argv.indexOf("--seconds");
const seconds = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : process.argv.includes("--quick") ? 20 : 60;
const root = new URL("..", import.meta.url).pathname;
const WAITERS = numberArg("waiters", 0);
/** Calls per client connection, under the server's default cap of 100 streams per connection. */
const CALLS_PER_CONNECTION = 50;

/** N clients, each long-polling its own queued task until `stop` fires. */
async function startWaiters(url: string, key: string, n: number, stop: AbortSignal): Promise<Promise<void>[]> {
  const clients = Array.from({ length: Math.ceil(n / CALLS_PER_CONNECTION) }, () =>
    createClient(TaskService, keyedGrpcTransport(url, key)),
  );
  const loops: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const client = clients[Math.floor(i / CALLS_PER_CONNECTION)]!;
    const { task } = await client.createTask({ agent: "simulate", input: value({ steps: 0 }) });
    loops.push(
      (async () => {
        while (!stop.aborted) {
          await client.waitTask({ taskId: task!.id, timeout: { seconds: 60n } }, { signal: stop }).catch(() => {});
        }
      })(),
    );
  }
  return loops;
}

async function main() {
  if (!adminUrl) {
    console.log(
      "### Idle statements\n\nSkipped: needs DATABASE_URL (an idle embedded process loads no other server).\n",
    );
    return;
  }
  const db = await keyedBenchDatabase(adminUrl, "idle");
  const { name } = db;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  const counter = await startStatementCounter(db.url);
  // Default settings: nothing from the environment but the database.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AGENTD_")));
  const child = spawn(process.execPath, [`${root}bin/agentd.js`, "serve", "--port", "0"], {
    cwd: root,
    env: {
      ...env,
      DATABASE_URL: counter.url,
      AGENTD_LOG_LEVEL: "info",
      ...(WAITERS > 0 ? { AGENTD_RUNNER_CONCURRENCY: "0" } : {}),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.includes('"agentd is serving"')) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code) => reject(new Error(`agentd serve exited (${code})`)));
  });
  const stopWaiters = new AbortController();
  const waiters = WAITERS > 0 ? await startWaiters(url, db.key, WAITERS, stopWaiters.signal) : [];
  await new Promise((r) => setTimeout(r, 5000)); // start-up work done
  const xacts = async () =>
    Number(
      (
        await admin<
          { n: number }[]
        >`SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = ${name}`
      )[0]!.n,
    );
  await admin`SELECT pg_stat_clear_snapshot()`;
  const before = counter.count();
  const beforeTexts = counter.texts();
  const xBefore = await xacts();
  const started = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const elapsed = (Date.now() - started) / 1000;
  const statements = counter.count() - before;
  const afterTexts = counter.texts();
  stopWaiters.abort();
  await Promise.all(waiters);
  await admin`SELECT pg_stat_clear_snapshot()`;
  const xAfter = await xacts();
  const byText = [...afterTexts]
    .map(([text, n]) => [text, n - (beforeTexts.get(text) ?? 0)] as const)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1]);
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  await counter.close();
  await admin.end();
  await db.drop();

  console.log(`### Idle statements — \`agentd serve\`, default settings, Postgres\n`);
  console.log(
    WAITERS > 0
      ? `${new Date().toISOString().slice(0, 10)}, one process (runner off), ${WAITERS} clients each long-polling a queued task with 60 s WaitTask calls; ${elapsed.toFixed(0)} s after a 5 s settle.\n`
      : `${new Date().toISOString().slice(0, 10)}, one process, no tasks, no streams, no clients; ${elapsed.toFixed(0)} s after a 5 s settle.\n`,
  );
  console.log(
    `**${(statements / elapsed).toFixed(2)} statements/s** (${statements} statements; the database counted ${xAfter - xBefore} transactions, its statistics lag up to 0.5 s).\n`,
  );
  console.log("| statement | count | per second |\n| --- | ---: | ---: |");
  for (const [text, n] of byText)
    console.log(`| \`${text.replace(/\|/g, "\\|")}\` | ${n} | ${(n / elapsed).toFixed(2)} |`);
  console.log("");
}

await main();
