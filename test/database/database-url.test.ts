// DATABASE_URL in libpq's multi-host form: accepted by the start-up check and
// the database layer, and no password in any error or log line.
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../services/shared/config.js";
import { isDatabaseUnavailable, openDatabase } from "../../services/shared/db/database.js";
import { parseDatabaseUrl } from "../../services/shared/db/database-url.js";

const SECRET = "s3cr3t-Pa55";

describe("parseDatabaseUrl", () => {
  it("splits a host list and keeps the rest", () => {
    const url = parseDatabaseUrl(
      `postgres://app:${SECRET}@db1.example:5433,db2.example,[::1]:6000/agentd?target_session_attrs=primary&sslmode=require`,
    );
    expect(url.hosts).toEqual([
      { host: "db1.example", port: 5433 },
      { host: "db2.example", port: 5432 },
      { host: "::1", port: 6000 },
    ]);
    expect(url.targetSessionAttrs).toBe("primary");
    expect(url.forHost(url.hosts[1]!)).toBe(`postgres://app:${SECRET}@db2.example:5432/agentd?sslmode=require`);
    expect(url.redacted).toBe("postgres://app:***@db1.example:5433,db2.example,[::1]:6000/agentd");
  });

  it("takes a single host and the postgresql:// scheme", () => {
    expect(parseDatabaseUrl("postgresql://u@h/db").hosts).toEqual([{ host: "h", port: 5432 }]);
  });

  it("leaves Unix sockets to the driver", () => {
    expect(parseDatabaseUrl("postgres://u@%2Fvar%2Frun%2Fpostgresql/db").hosts).toEqual([]);
    expect(parseDatabaseUrl("postgres:///db?host=/tmp").hosts).toEqual([]);
  });

  it("refuses target_session_attrs that would write to a standby", () => {
    expect(() => parseDatabaseUrl("postgres://u@h1,h2/db?target_session_attrs=standby")).toThrow(
      /primary or read-write/,
    );
    for (const ok of ["any", "read-write", "primary"])
      expect(parseDatabaseUrl(`postgres://u@h1,h2/db?target_session_attrs=${ok}`).targetSessionAttrs).toBe(ok);
  });
});

describe("the DATABASE_URL start-up check", () => {
  it("accepts the standard multi-host form", () => {
    const url = `postgres://app:${SECRET}@10.0.0.1:5432,10.0.0.2:5432/agentd?target_session_attrs=read-write`;
    expect(loadConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
  });

  it("names the setting, never the password", () => {
    for (const bad of [
      `mysql://app:${SECRET}@h/db`,
      `postgres://app:${SECRET}@h1:99999,h2/db`,
      `postgres://app:${SECRET}@h1,,h2/db`,
      `postgres://app:${SECRET}@h1,h2/db?target_session_attrs=read-only`,
    ]) {
      let error: unknown;
      try {
        loadConfig({ DATABASE_URL: bad });
      } catch (e) {
        error = e;
      }
      expect(error, bad).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/DATABASE_URL/);
      expect((error as Error).message).not.toContain(SECRET);
    }
  });
});

describe("a multi-host client", () => {
  it("fails over to the first writable host and says UNAVAILABLE, without the password, when there is none", async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const none = await openDatabase({
      url: `postgres://postgres:${SECRET}@127.0.0.1:${closedPort},localhost:${closedPort}/db?target_session_attrs=primary`,
    });
    try {
      const started = Date.now();
      const error = await none.sql`SELECT 1`.catch((e: unknown) => e);
      expect(isDatabaseUnavailable(error)).toBe(true);
      expect(String((error as Error).message)).not.toContain(SECRET);
      expect(Date.now() - started).toBeLessThan(10_000);
      await expect(none.ping()).rejects.toBeTruthy();
    } finally {
      await none.close();
    }

    const real = process.env.DATABASE_URL;
    if (!real) return; // the embedded run has no server to fail over to
    const target = new URL(real);
    const multi = `postgres://${target.username}:${SECRET}@127.0.0.1:${closedPort},${target.host}${target.pathname}?target_session_attrs=primary`;
    const db = await openDatabase({ url: multi, maxConnections: 2 });
    try {
      const [row] = await db.sql<{ one: number }[]>`SELECT 1::int AS one`;
      expect(row!.one).toBe(1);
      await db.ping();
    } finally {
      await db.close();
    }
  });

  it.skipIf(!process.env.DATABASE_URL)(
    "treats a read-only server as no primary: writes and health checks answer unavailable",
    async () => {
      const target = new URL(process.env.DATABASE_URL!);
      const readOnly = `postgres://${target.username}:${SECRET}@${target.host}${target.pathname}?default_transaction_read_only=on`;
      const db = await openDatabase({ url: readOnly, maxConnections: 2 });
      try {
        const error = await db.sql`CREATE TEMP TABLE x (y int)`.catch((e: unknown) => e);
        expect(isDatabaseUnavailable(error), String(error)).toBe(true);
        expect(String((error as Error).message)).not.toContain(SECRET);
        await expect(db.ping()).rejects.toBeTruthy();
      } finally {
        await db.close();
      }
    },
  );
});
