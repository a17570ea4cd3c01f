// A database of its own for every test file, made from a template that global
// setup prepared once (test/support/global-setup.ts):
// - DATABASE_URL set: `CREATE DATABASE agentd_test_x TEMPLATE agentd_template_y`.
// - unset: a copy of a PGlite folder (initdb takes ~4 s and ~800 MB; a copy is
//   fast), which the server under test opens itself with openDatabase({ dataDir }).
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, inject } from "vitest";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { startEmbeddedPostgres } from "../../services/shared/db/embedded.js";
import { createPostgresDatabase, databaseUrl, dropPostgresDatabase } from "./postgres-admin.js";

export type TestDatabaseTemplate =
  | { mode: "postgres"; adminUrl: string; template: string }
  | { mode: "embedded"; templateDir: string; emptyDir: string };

declare module "vitest" {
  export interface ProvidedContext {
    agentdDatabase: TestDatabaseTemplate;
  }
}

export type TestDatabase = {
  mode: "postgres" | "embedded";
  /** postgres mode: the new database's URL. */
  url?: string;
  /** embedded mode: the copied PGlite folder, for openDatabase({ dataDir }). */
  dataDir?: string;
  /** Removes the database; the server using it must be closed first. */
  drop(): Promise<void>;
};

/** A fresh database with all migrations applied, or with nothing at all (`migrated: false`). */
export async function createTestDatabase(opts: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const migrated = opts.migrated ?? true;
  const template = inject("agentdDatabase");
  if (template.mode === "postgres") {
    const name = `agentd_test_${randomBytes(6).toString("hex")}`;
    await createPostgresDatabase(template.adminUrl, name, migrated ? template.template : "template0");
    return {
      mode: "postgres",
      url: databaseUrl(template.adminUrl, name),
      drop: () => dropPostgresDatabase(template.adminUrl, name),
    };
  }
  const dataDir = await copyFolder(migrated ? template.templateDir : template.emptyDir);
  return { mode: "embedded", dataDir, drop: () => rm(dataDir, { recursive: true, force: true }) };
}

/**
 * A fresh migrated database, opened for the calling file's tests: opened before them (beforeAll),
 * closed and dropped after them (afterAll). Read `.db` from inside a test or hook.
 */
export function useTestDatabase(): { readonly db: Database } {
  let created: TestDatabase | undefined;
  let opened: Database | undefined;
  beforeAll(async () => {
    created = await createTestDatabase();
    opened = await openDatabase(created.url ? { url: created.url } : { dataDir: created.dataDir! });
  });
  afterAll(async () => {
    await opened?.close();
    await created?.drop();
  });
  return {
    get db() {
      if (!opened) throw new Error("the test database opens before the file's tests (beforeAll)");
      return opened;
    },
  };
}

/** A migrated database reachable by URL, for tests that start other processes.
 * Embedded: a PGlite copy served from this test process on a free port. */
export async function startSharedTestDatabase(): Promise<{
  mode: "postgres" | "embedded";
  url: string;
  close(): Promise<void>;
}> {
  const created = await createTestDatabase();
  if (created.mode === "postgres") return { mode: "postgres", url: created.url!, close: created.drop };
  const server = await startEmbeddedPostgres({ dataDir: created.dataDir!, port: 0 });
  return {
    mode: "embedded",
    url: server.url,
    async close() {
      await server.close();
      await created.drop();
    },
  };
}

// ---- also used by global setup ----

/** Copies a closed PGlite folder into a new temp folder. Many small files:
 * parallel copyFile takes ~0.2 s where fs.cp takes ~1 s. */
export async function copyFolder(from: string, to?: string): Promise<string> {
  const target = to ?? (await mkdtemp(join(tmpdir(), "agentd-test-db-")));
  const files: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    await mkdir(join(target, relative), { recursive: true });
    for (const entry of await readdir(join(from, relative), { withFileTypes: true })) {
      const path = join(relative, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) files.push(path);
    }
  };
  await walk("");
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const path = files[next++]!;
      await copyFile(join(from, path), join(target, path));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return target;
}
