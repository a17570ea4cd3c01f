// The database layer against a real database: Postgres when DATABASE_URL is
// set, embedded PGlite otherwise.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterEach, describe, expect, inject, it } from "vitest";
import { type Database, isDatabaseUnavailable, openDatabase } from "../../services/shared/db/database.js";
import { startEmbeddedPostgres } from "../../services/shared/db/embedded.js";
import { listMigrations, runMigrations } from "../../services/shared/db/migrate.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

const mode = inject("agentdDatabase").mode;
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  // Newest first: databases close before their folders are removed.
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function open(test: TestDatabase, opts: { maxConnections?: number } = {}): Promise<Database> {
  const db = await openDatabase({ url: test.url, dataDir: test.dataDir, ...opts });
  cleanups.push(() => db.close());
  return db;
}

async function fresh(opts: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const test = await createTestDatabase(opts);
  cleanups.push(() => test.drop());
  return test;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

describe("migrations", () => {
  it("on an empty database apply every migration in order and record each", async () => {
    const db = await open(await fresh({ migrated: false }));
    const all = (await listMigrations()).map((m) => m.id);
    expect(all[0]).toBe("0001_tasks");

    const { applied } = await runMigrations(db.sql);

    expect(applied).toEqual(all);
    const recorded = await db.sql<{ version: string; name: string; applied_at: Date }[]>`
      SELECT version, name, applied_at FROM schema_migrations ORDER BY version`;
    expect(recorded.map((r) => r.name)).toEqual(all);
    expect(recorded.every((r) => r.applied_at instanceof Date)).toBe(true);
    const [tasks] = await db.sql<{ n: number }[]>`SELECT count(*) AS n FROM tasks`;
    expect(tasks?.n).toBe(0); // int8 arrives as a number
  });

  it("run again apply nothing and change nothing", async () => {
    const db = await open(await fresh());
    const before = await db.sql`SELECT version, applied_at FROM schema_migrations ORDER BY version`;

    expect(await runMigrations(db.sql)).toEqual({ applied: [] });
    expect(await db.sql`SELECT version, applied_at FROM schema_migrations ORDER BY version`).toEqual(before);
  });

  it("started by two replicas at once on a fresh database apply each migration exactly once", async () => {
    const test = await fresh({ migrated: false });
    const first = await open(test, { maxConnections: 4 });
    // The second replica connects by URL: real Postgres, or the embedded server
    // that the first one runs.
    const second = await openDatabase({ url: first.url, maxConnections: 4 });
    cleanups.push(() => second.close());

    const results = await Promise.all([runMigrations(first.sql), runMigrations(second.sql)]);

    const all = (await listMigrations()).map((m) => m.id);
    expect([...results[0].applied, ...results[1].applied].sort()).toEqual(all);
    const [row] = await first.sql<{ n: number }[]>`SELECT count(*) AS n FROM schema_migrations`;
    expect(row?.n).toBe(all.length);
  });

  it("a failing migration rolls back entirely and is not recorded", async () => {
    const db = await open(await fresh({ migrated: false }));
    const dir = await mkdtemp(join(tmpdir(), "agentd-migrations-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "0001_good.sql"), "CREATE TABLE good (id int);");
    await writeFile(join(dir, "0002_bad.sql"), "CREATE TABLE half (id int);\nSELECT no_such_function();");

    await expect(runMigrations(db.sql, { dir })).rejects.toThrow("migration 0002_bad failed");

    const recorded = await db.sql<{ name: string }[]>`SELECT name FROM schema_migrations`;
    expect(recorded.map((r) => r.name)).toEqual(["0001_good"]);
    const [half] = await db.sql<{ t: string | null }[]>`SELECT to_regclass('half')::text AS t`;
    expect(half?.t).toBeNull();
    // The lock was released and the connection is usable: fixing the file lets it through.
    await writeFile(join(dir, "0002_bad.sql"), "CREATE TABLE half (id int);");
    expect(await runMigrations(db.sql, { dir })).toEqual({ applied: ["0002_bad"] });
  });
});

describe("isDatabaseUnavailable", () => {
  it("is true for a refused connection and false for a bad query", async () => {
    const port = await freePort();
    const db = await openDatabase({ url: `postgres://postgres@127.0.0.1:${port}/nothing` });
    cleanups.push(() => db.close());
    const refused = await db.sql`SELECT 1`.catch((error: unknown) => error);
    expect(isDatabaseUnavailable(refused)).toBe(true);
    // Wrapped, as handlers pass it on.
    expect(isDatabaseUnavailable(new Error("lookup failed", { cause: refused }))).toBe(true);

    const ok = await open(await fresh());
    const syntax = await ok.sql`SELEKT 1`.catch((error: unknown) => error);
    expect((syntax as { code?: string }).code).toBe("42601");
    expect(isDatabaseUnavailable(syntax)).toBe(false);
    expect(isDatabaseUnavailable(new Error("plain"))).toBe(false);
    expect(isDatabaseUnavailable(undefined)).toBe(false);
  });

  it("is true for Postgres' connection-loss and shutdown codes, false for others", () => {
    for (const code of ["57P01", "57P02", "57P03", "53300", "08006", "08001", "CONNECTION_CLOSED", "ECONNRESET"]) {
      expect(isDatabaseUnavailable(Object.assign(new Error(code), { code }))).toBe(true);
    }
    for (const code of ["23505", "40001", "42P01", "57014", "UNDEFINED_VALUE"]) {
      expect(isDatabaseUnavailable(Object.assign(new Error(code), { code }))).toBe(false);
    }
    const refusedTwice = new AggregateError(
      [Object.assign(new Error("v6"), { code: "ECONNREFUSED" })],
      "connect failed",
    );
    expect(isDatabaseUnavailable(refusedTwice)).toBe(true);
  });

  it.skipIf(mode !== "postgres")("is true when the server terminates the session mid-query", async () => {
    const test = await fresh();
    const sql = postgres(test.url!, { max: 1, onnotice: () => {} });
    const admin = postgres(test.url!, { max: 1, onnotice: () => {} });
    // Timeout 0: postgres.js waits for the full timeout in end() after a killed query.
    cleanups.push(() => Promise.all([sql.end({ timeout: 0 }), admin.end()]));
    const [row] = await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
    const sleeping = sql`SELECT pg_sleep(30)`.catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 100));

    await admin`SELECT pg_terminate_backend(${row!.pid})`;

    expect(isDatabaseUnavailable(await sleeping)).toBe(true);
    // The next query reconnects; postgres.js 3.4.9 may first report the stale 57P01.
    const next = await sql`SELECT 1 AS one`.catch((error: unknown) => error);
    if (Array.isArray(next)) expect(next).toEqual([{ one: 1 }]);
    else expect(isDatabaseUnavailable(next)).toBe(true);
  });
});

// PGlite behind its loopback server. Runs in embedded mode only: in Postgres
// mode the test databases are not PGlite folders.
describe.skipIf(mode !== "embedded")("embedded database", () => {
  it("keeps its data across close and reopen of the folder", async () => {
    const test = await fresh();
    const first = await openDatabase({ dataDir: test.dataDir! });
    await first.sql`INSERT INTO tenants (tenant_id) VALUES ('kept')`;
    await first.close();

    const second = await open(test);
    expect(await second.sql`SELECT tenant_id FROM tenants`).toEqual([{ tenant_id: "kept" }]);
  });

  it("refuses to open a folder that is already open", async () => {
    const test = await fresh();
    await open(test);
    await expect(openDatabase({ dataDir: test.dataDir! })).rejects.toThrow(/already open/);
  });

  it("serves several clients at once without mixing their statements", async () => {
    const test = await fresh();
    const server = await startEmbeddedPostgres({ dataDir: test.dataDir! });
    cleanups.push(() => server.close());
    const clients = [1, 2, 3, 4].map((max) =>
      postgres(server.url, { max, onnotice: () => {}, prepare: max % 2 === 0 }),
    );
    cleanups.push(() => Promise.all(clients.map((c) => c.end())));

    await Promise.all(
      clients.flatMap((sql, c) =>
        [0, 1, 2].map(async (lane) => {
          for (let i = 0; i < 30; i++) {
            const n = c * 1000 + lane * 100 + i;
            const [row] = await sql<{ n: string; s: string }[]>`SELECT ${n}::int8 AS n, ${`x${n}`}::text AS s`;
            expect(row).toEqual({ n: String(n), s: `x${n}` });
            if (i % 3 === 0) {
              await sql.begin(async (tx) => {
                await tx`INSERT INTO tenants (tenant_id) VALUES (${`t${n}`})`;
                const [seen] = await tx<
                  { n: string }[]
                >`SELECT count(*) AS n FROM tenants WHERE tenant_id = ${`t${n}`}`;
                expect(seen?.n).toBe("1");
              });
            }
            if (i % 10 === 0) {
              await expect(sql.begin((tx) => tx`SELECT 1 / 0`)).rejects.toThrow(/division by zero/);
            }
          }
        }),
      ),
    );
    const [count] = await clients[0]!<{ n: string }[]>`SELECT count(*) AS n FROM tenants`;
    expect(count?.n).toBe(String(4 * 3 * 10));
  });

  it("rolls back the open transaction of a client that disconnects", async () => {
    const test = await fresh();
    const server = await startEmbeddedPostgres({ dataDir: test.dataDir! });
    cleanups.push(() => server.close());
    const other = postgres(server.url, { max: 1, onnotice: () => {} });
    cleanups.push(() => other.end());

    const leaving = postgres(server.url, { max: 1, onnotice: () => {} });
    const conn = await leaving.reserve();
    await conn`BEGIN`;
    await conn`INSERT INTO tenants (tenant_id) VALUES ('never')`;
    await leaving.end({ timeout: 0 });

    expect(await other`SELECT tenant_id FROM tenants`).toEqual([]);
  });
});
