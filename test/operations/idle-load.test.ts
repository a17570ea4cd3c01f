// Idle cost (issue 13): an `agentd serve` with nothing to do must not keep its
// database busy. Wake-ups carry the work; the poll backstops, sweeps, health
// check and listener canary together stay near one statement per second.
// Postgres only: the embedded database has no server of its own to load.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../services/shared/config.js";
import { type AgentdProcess, spawnAgentd } from "../support/agentd.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { type StatementCounter, startStatementCounter } from "../support/statement-counter.js";

const postgresMode = Boolean(process.env.DATABASE_URL);
const defaults = loadConfig({}, {}, {});

let db: TestDatabase | undefined;
let counter: StatementCounter | undefined;
let agentd: AgentdProcess | undefined;
beforeAll(async () => {
  if (!postgresMode) return;
  db = await createTestDatabase();
  counter = await startStatementCounter(db.url!);
  // Default intervals, not the fast ones the other process tests use.
  agentd = await spawnAgentd({
    databaseUrl: counter.url,
    env: {
      AGENTD_LEASE_MS: String(defaults.leaseMs),
      AGENTD_HEARTBEAT_MS: String(defaults.heartbeatMs),
      AGENTD_POLL_MS: String(defaults.pollMs),
      AGENTD_RETRY_BACKOFF_MS: String(defaults.retryBackoffMs),
    },
  });
}, 60_000);
afterAll(async () => {
  await agentd?.kill("SIGTERM");
  await counter?.close();
  await db?.drop();
});

describe.skipIf(!postgresMode)("an idle agentd serve", () => {
  it("sends at most about a statement per second to Postgres (bound: 2/s over 20 s)", async () => {
    await new Promise((r) => setTimeout(r, 3000)); // start-up work done
    const before = counter!.count();
    await new Promise((r) => setTimeout(r, 20_000));
    const perSecond = (counter!.count() - before) / 20;
    expect(perSecond, JSON.stringify(Object.fromEntries(counter!.texts()))).toBeLessThanOrEqual(2);
  }, 60_000);
});
