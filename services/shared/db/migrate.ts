// Numbered SQL migrations (migrations/NNNN_name.sql), applied in order, each in
// its own transaction, recorded in schema_migrations. A migration file must not
// contain its own BEGIN/COMMIT or statements that refuse a transaction
// (CREATE INDEX CONCURRENTLY).
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Logger, silentLogger } from "../log.js";
import type { Sql } from "./database.js";

const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));

// Any fixed number works as long as nothing else uses it: "agentd" in ASCII.
const LOCK_KEY = "107096711263332";

export interface Migration {
  /** "0001" */
  version: string;
  /** "0001_tasks": what `applied` reports */
  id: string;
  file: string;
}

export async function listMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const entry of (await readdir(dir)).sort()) {
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(entry);
    if (!match) continue;
    const version = match[1]!;
    if (migrations.some((m) => m.version === version)) throw new Error(`two migrations numbered ${version} in ${dir}`);
    migrations.push({ version, id: entry.slice(0, -4), file: join(dir, entry) });
  }
  return migrations;
}

export async function runMigrations(
  sql: Sql,
  opts: { logger?: Logger; dir?: string } = {},
): Promise<{ applied: string[] }> {
  const logger = opts.logger ?? silentLogger();
  const migrations = await listMigrations(opts.dir);
  const applied: string[] = [];
  // Everything runs on one reserved connection: the advisory lock is held by a
  // session, and with the embedded database's single connection `sql` could
  // not serve a second one meanwhile.
  const conn = await sql.reserve();
  try {
    // Replicas starting together wait here for the first one to finish.
    await conn`SELECT pg_advisory_lock(${LOCK_KEY}::bigint)`;
    try {
      await conn`
        CREATE TABLE IF NOT EXISTS schema_migrations (
          version    text PRIMARY KEY,
          name       text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`;
      const done = new Set(
        (await conn<{ version: string }[]>`SELECT version FROM schema_migrations`).map((r) => r.version),
      );
      for (const migration of migrations) {
        if (done.has(migration.version)) continue;
        const started = performance.now();
        if (await applyOne(conn, migration)) {
          applied.push(migration.id);
          logger.info({ migration: migration.id, ms: Math.round(performance.now() - started) }, "applied migration");
        }
      }
    } finally {
      await conn`SELECT pg_advisory_unlock(${LOCK_KEY}::bigint)`.catch((error: unknown) =>
        logger.warn({ err: error }, "could not release the migration lock; it ends with the connection"),
      );
    }
  } finally {
    conn.release();
  }
  return { applied };
}

/** Applies one migration in a transaction; false if another process already had. */
async function applyOne(conn: Sql, migration: Migration): Promise<boolean> {
  const text = await readFile(migration.file, "utf8");
  await conn.unsafe("BEGIN");
  try {
    // Recorded first and checked inside the transaction: under the embedded
    // database every client shares one session, so the advisory lock excludes
    // nothing there, while its transactions do exclude each other.
    const claimed = await conn`
      INSERT INTO schema_migrations (version, name) VALUES (${migration.version}, ${migration.id})
      ON CONFLICT (version) DO NOTHING
      RETURNING version`;
    if (claimed.length === 0) {
      await conn.unsafe("ROLLBACK");
      return false;
    }
    await conn.unsafe(text); // no parameters: the simple protocol, so many statements are fine
    await conn.unsafe("COMMIT");
    return true;
  } catch (error) {
    await conn.unsafe("ROLLBACK").catch(() => {});
    throw new Error(`migration ${migration.id} failed`, { cause: error });
  }
}
