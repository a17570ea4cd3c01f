// Chaos (issue 7, part 5): agentd child processes on a Postgres cluster this test
// starts itself (test/chaos/cluster.ts; never the machine's server), then
// (a) stops and restarts that Postgres under load, (b) kill -9s runners and
// notifiers over a few hundred tasks, and (c) freezes Postgres (SIGSTOP: connections
// stay open, nothing answers) while calls are made. Bounds are generous on purpose: what is
// asserted is that nothing is lost, failed, repeated or leaked, not how fast.
//
// Runs in the real-Postgres run of `npm test` (DATABASE_URL set), and skips in
// the embedded-PGlite run: it starts its own cluster either way, so a second run
// would cost CI minutes and prove nothing new. AGENTD_CHAOS=1 runs it regardless.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TaskEvent, TaskState } from "../../gen/agentd/v1/task_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import {
  type AgentdProcess,
  type Clients,
  clientsFor,
  spawnAgentd,
  spawnAgentdCommand,
  transportFor,
} from "../support/agentd.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { NOTIFIER_TEST_ENV, type Receiver, startReceiver } from "../webhooks/support.js";
import { clusterUnavailableReason, type PostgresCluster, startCluster } from "./cluster.js";

const wanted = Boolean(process.env.DATABASE_URL) || process.env.AGENTD_CHAOS === "1";
const missing = clusterUnavailableReason();
// In CI (.ci/run installs the binaries) missing binaries fail the suite instead of skipping it.
const skipReason = !wanted
  ? "chaos suite: runs only with DATABASE_URL set (the real-Postgres run) or AGENTD_CHAOS=1"
  : missing && process.env.CI !== "true"
    ? `chaos suite skipped: ${missing}`
    : undefined;
if (skipReason) console.warn(skipReason);

let cluster: PostgresCluster;
const processes: AgentdProcess[] = [];
const receivers: Receiver[] = [];

beforeAll(async () => {
  if (skipReason) return;
  cluster = await startCluster();
}, 120_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill("SIGKILL")));
  await Promise.all(receivers.map((r) => r.close()));
  await cluster?.destroy();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TERMINAL = new Set([TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELED]);
const codeOf = (error: unknown) => ConnectError.from(error).code;

/** A database on the chaos cluster, migrated, with a key of tenant "t1". */
async function prepareDatabase(): Promise<{ url: string; key: string }> {
  const url = await cluster.createDatabase(`chaos_${randomBytes(4).toString("hex")}`);
  const db = await openDatabase({ url, maxConnections: 1 });
  try {
    await runMigrations(db.sql);
    const { key } = await createApiKey(db.sql, { tenantId: "t1", scopes: [...SCOPES] });
    return { url, key };
  } finally {
    await db.close();
  }
}

async function serve(url: string, env: Record<string, string>) {
  const p = await spawnAgentd({ databaseUrl: url, env });
  processes.push(p);
  return p;
}

async function notifier(url: string, env: Record<string, string>) {
  const p = await spawnAgentdCommand("notifier", { databaseUrl: url, ready: "agentd notifier is running", env });
  processes.push(p);
  return p;
}

/** Every task's log, whole. */
async function logsOf(client: Clients, ids: string[]): Promise<Map<string, TaskEvent[]>> {
  const logs = new Map<string, TaskEvent[]>();
  for (const taskId of ids) {
    const { events } = await client.tasks.listTaskEvents({ taskId, pageSize: 1000 }, { timeoutMs: 10_000 });
    logs.set(taskId, events);
  }
  return logs;
}

/** Sequences 1..n with no gap and no repeat. */
function expectNoGaps(taskId: string, sequences: number[]) {
  expect(sequences, `task ${taskId}: its events`).toEqual(sequences.map((_, i) => i + 1));
}

/**
 * Follows a task with WatchTask, reconnecting after the last sequence it saw
 * whenever the stream breaks, until the task ends. Returns every sequence received.
 */
async function watchToEnd(client: Clients, taskId: string, errors: Code[], deadline: number): Promise<number[]> {
  const seen: number[] = [];
  let after = 0n;
  while (Date.now() < deadline) {
    try {
      for await (const res of client.tasks.watchTask({ taskId, afterSequence: after })) {
        const event = res.event;
        if (!event) continue;
        seen.push(Number(event.sequence));
        after = event.sequence;
        if (event.event.case === "stateChange" && TERMINAL.has(event.event.value.state)) return seen;
      }
    } catch (error) {
      errors.push(codeOf(error));
    }
    await sleep(200);
  }
  return seen;
}

describe.skipIf(skipReason !== undefined)("Postgres stopped and restarted under load", () => {
  it("loses no acknowledged task, fails none, answers UNAVAILABLE meanwhile and recovers", async () => {
    const { url, key } = await prepareDatabase();
    // Leases longer than the outage: runners that could not renew during it are still alive.
    const env = { ...NOTIFIER_TEST_ENV, AGENTD_LEASE_MS: "15000", AGENTD_HEARTBEAT_MS: "500", AGENTD_POLL_MS: "200" };
    const replicas = [await serve(url, env), await serve(url, env)];
    await notifier(url, env);
    const receiver = await startReceiver();
    receivers.push(receiver);
    const clients = replicas.map((r) => clientsFor(r.url, key));
    await clients[0]!.webhooks.rotateWebhookSecret({});
    const webhook = { url: receiver.url, eventTypes: ["task.succeeded"] };

    // Long tasks that are running when the database goes, each followed by a watcher.
    const long: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { task } = await clients[i % 2]!.tasks.createTask({
        agent: "simulate",
        input: value({ steps: 40, step_delay_ms: 200 }),
        webhook,
      });
      long.push(task!.id);
    }
    const watchErrors: Code[] = [];
    const watched = long.map((id, i) => watchToEnd(clients[i % 2]!, id, watchErrors, Date.now() + 120_000));

    // Creators and pollers on both replicas until told to stop; every failed call is kept with how long it took.
    const acked: string[] = [...long];
    const failures: { code: Code; ms: number; message: string }[] = [];
    let loading = true;
    const call = async <T>(fn: () => Promise<T>): Promise<T | undefined> => {
      const started = Date.now();
      try {
        return await fn();
      } catch (error) {
        const e = ConnectError.from(error);
        failures.push({ code: e.code, ms: Date.now() - started, message: e.rawMessage });
        return undefined;
      } finally {
        await sleep(40);
      }
    };
    const loops = clients.flatMap((client) => [
      (async () => {
        while (loading) {
          const res = await call(() =>
            client.tasks.createTask(
              { agent: "simulate", input: value({ steps: 3, step_delay_ms: 100 }), webhook },
              { timeoutMs: 20_000 },
            ),
          );
          if (res?.task) acked.push(res.task.id);
        }
      })(),
      (async () => {
        while (loading) {
          const id = acked[Math.floor(Math.random() * acked.length)]!;
          await call(() => client.tasks.getTask({ taskId: id }, { timeoutMs: 20_000 }));
        }
      })(),
    ]);

    await sleep(2000);
    await cluster.stop("immediate");
    const downAt = Date.now();
    // While it is down: health says so, and a call answers UNAVAILABLE promptly.
    await sleep(1500);
    const health = replicas.map((r) => createClient(Health, transportFor(r.url, "connect")));
    for (const h of health) {
      await until(
        () => h.check({ service: "" }, { timeoutMs: 5000 }),
        (r) => r.status === Serving.NOT_SERVING,
        { what: "health NOT_SERVING during the outage", ms: 10_000, everyMs: 100, retryErrors: true },
      ).catch((e) => {
        for (const r of replicas)
          if (r.child.exitCode !== null)
            console.warn(`replica ${r.url} exited with ${r.child.exitCode} during the outage`);
        throw e;
      });
    }
    const probeStart = Date.now();
    const probe = await clients[0]!.tasks
      .getTask({ taskId: long[0]! }, { timeoutMs: 20_000 })
      .catch((e: unknown) => ConnectError.from(e));
    const probeMs = Date.now() - probeStart;
    expect(probe).toBeInstanceOf(ConnectError);
    expect((probe as ConnectError).code).toBe(Code.Unavailable);
    await sleep(Math.max(0, 4000 - (Date.now() - downAt)));

    await cluster.start();
    const upAt = Date.now();
    // Time to the first OK on every replica, from the moment Postgres accepts connections again.
    const recoveryMs = await Promise.all(
      clients.map(async (client) => {
        await until(
          () => client.tasks.getTask({ taskId: long[0]! }, { timeoutMs: 5000 }),
          () => true,
          { what: "first OK after the outage", ms: 30_000, everyMs: 50, retryErrors: true },
        );
        return Date.now() - upAt;
      }),
    );
    for (const h of health) {
      await until(
        () => h.check({ service: "" }, { timeoutMs: 5000 }),
        (r) => r.status === Serving.SERVING,
        { what: "health SERVING after the outage", ms: 30_000, everyMs: 50, retryErrors: true },
      );
    }
    await sleep(2000);
    loading = false;
    await Promise.all(loops);

    // Every acknowledged task ends, and ends well.
    const finals = await until(
      () => Promise.all(acked.map((taskId) => clients[0]!.tasks.getTask({ taskId }, { timeoutMs: 10_000 }))),
      (all) => all.every((r) => r.task && TERMINAL.has(r.task.state)),
      { what: "every acknowledged task ended", ms: 120_000, everyMs: 500, retryErrors: true },
    );
    const unavailableMs = failures.filter((f) => f.code === Code.Unavailable).map((f) => f.ms);
    console.info(
      `chaos restart: ${acked.length} tasks acknowledged, ${failures.length} calls failed during the outage ` +
        `(slowest UNAVAILABLE ${Math.max(0, ...unavailableMs)} ms, probe ${probeMs} ms), first OK per replica ${recoveryMs.join(", ")} ms after restart`,
    );
    const failed = finals
      .filter((r) => r.task!.state !== TaskState.SUCCEEDED)
      .map((r) => ({ id: r.task!.id, error: r.task!.error }));
    expect(failed).toEqual([]);
    // Calls during the outage: UNAVAILABLE, never INTERNAL or a hang to the deadline, and no internals.
    expect(new Set(failures.map((f) => Code[f.code]))).toEqual(new Set(failures.length ? ["Unavailable"] : []));
    for (const f of failures) expect(f.message).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|:\d{4,5}\b|postgres/i);
    expect(probeMs).toBeLessThan(10_000);
    for (const ms of recoveryMs) expect(ms).toBeLessThan(15_000);

    // Watchers saw each event exactly once, in order, to the end.
    const seen = await Promise.all(watched);
    const logs = await logsOf(clients[0]!, long);
    long.forEach((id, i) => {
      expectNoGaps(id, seen[i]!);
      expect(seen[i]!.length, `watcher of ${id}`).toBe(logs.get(id)!.length);
    });
    expect(watchErrors.every((c) => c === Code.Unavailable)).toBe(true);

    // The notifier went through it too: every task.succeeded arrives.
    await receiver.until(
      (got) => new Set(got.map((r) => JSON.parse(r.body).data.task.id)).size >= acked.length,
      60_000,
    );
  }, 240_000);
});

describe.skipIf(skipReason !== undefined)("runners and notifiers killed with SIGKILL", () => {
  it("lose nothing: every task ends, no attempt runs twice at once, no gaps, every webhook arrives", async () => {
    await cluster.start(); // a no-op, unless the test before failed during its outage
    const { url, key } = await prepareDatabase();
    const env = { ...NOTIFIER_TEST_ENV, AGENTD_LEASE_MS: "2000", AGENTD_HEARTBEAT_MS: "200", AGENTD_POLL_MS: "200" };
    // The front replica takes the calls and runs nothing; it is never killed.
    const front = await serve(url, { ...env, AGENTD_RUNNER_CONCURRENCY: "0" });
    const client = clientsFor(front.url, key);
    await client.webhooks.rotateWebhookSecret({});
    // One at a time: several processes compiling at once on a loaded machine can miss their start-up bound.
    const runners = [
      await serve(url, { ...env, AGENTD_RUNNER_CONCURRENCY: "8" }),
      await serve(url, { ...env, AGENTD_RUNNER_CONCURRENCY: "8" }),
    ];
    const notifiers = [await notifier(url, env), await notifier(url, env)];
    const receiver = await startReceiver(() => ({ status: 200, delayMs: Math.floor(Math.random() * 20) }));
    receivers.push(receiver);

    // Tasks keep coming for as long as processes are being killed (at least 200, at most 600),
    // so every kill lands while there is work: runners die with attempts in flight.
    const ids: string[] = [];
    const createErrors: string[] = [];
    let killing = true;
    const creating = (async () => {
      while ((killing || ids.length < 200) && ids.length + createErrors.length < 600) {
        try {
          const { task } = await client.tasks.createTask({
            agent: "simulate",
            input: value({ steps: 3, step_delay_ms: 60 }),
            maxAttempts: 10,
            webhook: { url: receiver.url, eventTypes: ["task.running", "task.succeeded"] },
          });
          ids.push(task!.id);
        } catch (error) {
          createErrors.push(ConnectError.from(error).message);
        }
        await sleep(30);
      }
    })();

    // A runner kill takes the runner with the most attempts in flight (leases name their owner's
    // pid), so that it hits work: a replacement that has not claimed anything yet would lose nothing.
    const leases = await openDatabase({ url, maxConnections: 1 });
    const busiestRunner = async (pool: AgentdProcess[]): Promise<number> => {
      const owners = await leases.sql<{ lease_owner: string; n: number }[]>`
        SELECT lease_owner, count(*)::int AS n FROM tasks WHERE state = 'RUNNING' GROUP BY lease_owner ORDER BY n DESC
      `;
      for (const { lease_owner } of owners) {
        const at = pool.findIndex((p) => lease_owner.split("/")[1] === String(p.child.pid));
        if (at >= 0) return at;
      }
      return Math.floor(Math.random() * pool.length);
    };
    // KILLS kills, runners and notifiers in turn, 0.5–1.2 s apart; each victim is replaced in the
    // background (starting a process is slow on a loaded machine), and one of each kind is always left.
    const KILLS = 8;
    const killed = { runners: 0, notifiers: 0 };
    const replacements: Promise<unknown>[] = [];
    const deadline = Date.now() + 90_000;
    try {
      while (killed.runners + killed.notifiers < KILLS && Date.now() < deadline) {
        await sleep(500 + Math.random() * 700);
        const kind = (killed.runners + killed.notifiers) % 2 === 0 ? "runners" : "notifiers";
        const pool = kind === "runners" ? runners : notifiers;
        if (pool.length < 2) continue; // its last kill's replacement is still starting
        const at = kind === "runners" ? await busiestRunner(pool) : Math.floor(Math.random() * pool.length);
        const [victim] = pool.splice(at, 1);
        await victim!.kill("SIGKILL");
        killed[kind]++;
        const next = kind === "runners" ? serve(url, { ...env, AGENTD_RUNNER_CONCURRENCY: "8" }) : notifier(url, env);
        // A replacement too slow to start on a loaded machine costs capacity, not correctness.
        replacements.push(
          next
            .then((p) => pool.push(p))
            .catch((e: unknown) => console.warn(`a replacement did not start: ${String(e).slice(0, 200)}`)),
        );
      }
    } finally {
      await leases.close();
    }
    killing = false;
    await creating;
    await Promise.all(replacements);
    expect(createErrors).toEqual([]);
    // Enough kills of each kind to mean something (the deadline is generous for a loaded machine).
    expect(killed.runners).toBeGreaterThanOrEqual(KILLS / 2 - 1);
    expect(killed.notifiers).toBeGreaterThanOrEqual(KILLS / 2 - 1);
    expect(ids.length).toBeGreaterThanOrEqual(200);

    const finals = await until(
      () => Promise.all(ids.map((taskId) => client.tasks.getTask({ taskId }, { timeoutMs: 10_000 }))),
      (all) => all.every((r) => r.task && TERMINAL.has(r.task.state)),
      { what: "every task ended", ms: 120_000, everyMs: 1000, retryErrors: true },
    );
    expect(finals.filter((r) => r.task!.state !== TaskState.SUCCEEDED).map((r) => r.task!.id)).toEqual([]);

    const logs = await logsOf(client, ids);
    const expected = new Set<string>();
    let retried = 0;
    for (const [taskId, events] of logs) {
      expectNoGaps(
        taskId,
        events.map((e) => Number(e.sequence)),
      );
      // No attempt twice at once: each RUNNING follows a state that is not RUNNING, with a higher attempt.
      let state = TaskState.UNSPECIFIED;
      let attempt = 0;
      for (const e of events) {
        if (e.event.case !== "stateChange") continue;
        const next = e.event.value;
        if (next.state === TaskState.RUNNING) {
          expect(state, `task ${taskId}: RUNNING twice in a row`).not.toBe(TaskState.RUNNING);
          expect(next.task!.attempt, `task ${taskId}: attempt ${next.task!.attempt} ran again`).toBeGreaterThan(
            attempt,
          );
          if (attempt > 0) retried++;
          attempt = next.task!.attempt;
          expected.add(`${taskId}/${e.sequence}`);
        }
        if (next.state === TaskState.SUCCEEDED) expected.add(`${taskId}/${e.sequence}`);
        state = next.state;
      }
    }

    // Every subscribed event delivered at least once; a repeat carries the same webhook-id.
    const byEvent = new Map<string, Set<string>>();
    const delivered = () => {
      byEvent.clear();
      for (const r of receiver.received) {
        const body = JSON.parse(r.body) as { data: { task: { id: string }; sequence: string | number } };
        const k = `${body.data.task.id}/${body.data.sequence}`;
        byEvent.set(k, (byEvent.get(k) ?? new Set()).add(String(r.headers["webhook-id"])));
      }
      return [...expected].filter((k) => !byEvent.has(k));
    };
    await until(
      async () => delivered(),
      (lost) => lost.length === 0,
      { what: "every webhook delivered", ms: 90_000, everyMs: 1000, retryErrors: true },
    ).catch(() => {
      throw new Error(`webhooks lost: ${delivered().slice(0, 10).join(", ")} (${delivered().length} in all)`);
    });
    for (const [k, webhookIds] of byEvent)
      expect(webhookIds.size, `event ${k} delivered under several webhook-ids`).toBe(1);
    console.info(
      `chaos kill -9: ${killed.runners} runner and ${killed.notifiers} notifier kills, ${ids.length} tasks, ${retried} retried attempts, ${receiver.received.length} webhook requests for ${expected.size} events`,
    );
    // The runner kills hit attempts in flight: some task ran again under a new attempt, and still succeeded.
    expect(retried).toBeGreaterThan(0);
  }, 300_000);
});

/** The cluster's server processes: the postmaster (postmaster.pid) and its children. */
function serverProcesses(): number[] {
  const postmaster = Number(readFileSync(join(cluster.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  const children = execFileSync("pgrep", ["-P", String(postmaster)], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map(Number);
  return [postmaster, ...children];
}

describe.skipIf(skipReason !== undefined)("Postgres frozen (SIGSTOP): connections open, no answers", () => {
  it("answers UNAVAILABLE within the statement deadline, and fails no task", async () => {
    await cluster.start(); // a no-op, unless a test before failed during its outage
    const { url, key } = await prepareDatabase();
    const env = { AGENTD_LEASE_MS: "15000", AGENTD_HEARTBEAT_MS: "500", AGENTD_DB_STATEMENT_TIMEOUT_MS: "2000" };
    const replica = await serve(url, env);
    const client = clientsFor(replica.url, key);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { task } = await client.tasks.createTask({
        agent: "simulate",
        input: value({ steps: 20, step_delay_ms: 200 }),
      });
      ids.push(task!.id);
    }
    await sleep(1000);

    const frozen = serverProcesses();
    process.kill(frozen[0]!, "SIGSTOP");
    for (const pid of frozen.slice(1)) process.kill(pid, "SIGSTOP");
    let answers: { code: Code | undefined; message: string; ms: number }[];
    try {
      // Past the API key cache (3 s), so that authenticating the calls needs the database too.
      await sleep(3500);
      // The connect timeout does not help here: connections are open and the server never answers.
      const measure = async (call: () => Promise<unknown>) => {
        const started = Date.now();
        const error = await call().then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
        return { code: error?.code, message: error?.rawMessage ?? "", ms: Date.now() - started };
      };
      // SSE first and alone (a key lookup in flight is shared by concurrent calls): its look-ups
      // before the stream are bounded too, and 503 is its UNAVAILABLE.
      answers = [
        await measure(async () => {
          const res = await fetch(`${replica.url}/v1/tasks/${ids[0]}/events`, {
            headers: { authorization: `Bearer ${key}` },
            signal: AbortSignal.timeout(30_000),
          });
          const body = await res.text();
          if (res.status === 503) throw new ConnectError(JSON.parse(body).message, Code.Unavailable);
          throw new Error(`SSE answered ${res.status}: ${body.slice(0, 200)}`);
        }),
        ...(await Promise.all(
          [
            () => client.tasks.getTask({ taskId: ids[0]! }, { timeoutMs: 30_000 }),
            () => client.tasks.listTasks({}, { timeoutMs: 30_000 }),
            () => client.tasks.createTask({ agent: "simulate" }, { timeoutMs: 30_000 }),
          ].map(measure),
        )),
      ];
      await sleep(2000);
    } finally {
      for (const pid of frozen) process.kill(pid, "SIGCONT");
    }
    const thawedAt = Date.now();
    console.info(
      `frozen Postgres: calls answered ${answers.map((a) => `${Code[a.code ?? 0]} in ${a.ms} ms`).join(", ")}`,
    );
    for (const a of answers) {
      expect(a.code).toBe(Code.Unavailable);
      expect(a.message).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|:\d{4,5}\b|postgres|statement/i);
      // The deadline is 2 s, the client's 30 s: generous for a loaded machine.
      expect(a.ms).toBeLessThan(15_000);
    }

    await until(
      () => client.tasks.getTask({ taskId: ids[0]! }, { timeoutMs: 5000 }),
      () => true,
      { what: "first OK after the thaw", ms: 30_000, everyMs: 100, retryErrors: true },
    );
    console.info(`frozen Postgres: first OK ${Date.now() - thawedAt} ms after SIGCONT`);
    const finals = await until(
      () => Promise.all(ids.map((taskId) => client.tasks.getTask({ taskId }, { timeoutMs: 10_000 }))),
      (all) => all.every((r) => r.task && TERMINAL.has(r.task.state)),
      { what: "every task ended", ms: 120_000, everyMs: 500, retryErrors: true },
    );
    expect(finals.filter((r) => r.task!.state !== TaskState.SUCCEEDED).map((r) => r.task!.error)).toEqual([]);
    expect(replica.child.exitCode).toBeNull();
  }, 240_000);
});
