// Prepares, once per test run, the template every test database is made from
// (see test/support/database.ts), and removes it at the end.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { copyFolder } from "./database.js";
import { createPostgresDatabase, databaseUrl, dropPostgresDatabase } from "./postgres-admin.js";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const adminUrl = process.env.DATABASE_URL;
  return adminUrl ? preparePostgres(project, adminUrl) : prepareEmbedded(project);
}

async function preparePostgres(project: TestProject, adminUrl: string): Promise<() => Promise<void>> {
  const template = `agentd_template_${randomBytes(6).toString("hex")}`;
  await createPostgresDatabase(adminUrl, template, "template0");
  try {
    await migrate({ url: databaseUrl(adminUrl, template) });
  } catch (error) {
    await dropPostgresDatabase(adminUrl, template);
    throw error;
  }
  project.provide("agentdDatabase", { mode: "postgres", adminUrl, template });
  return () => dropPostgresDatabase(adminUrl, template);
}

// Two folders: `empty` right after initdb, `migrated` a copy with migrations
// applied. Both closed cleanly before any test copies them.
async function prepareEmbedded(project: TestProject): Promise<() => Promise<void>> {
  const root = await mkdtemp(join(tmpdir(), "agentd-test-template-"));
  const emptyDir = join(root, "empty");
  const templateDir = join(root, "migrated");
  try {
    await mkdir(emptyDir);
    await migrate({ dataDir: emptyDir, migrations: false });
    await copyFolder(emptyDir, templateDir);
    await migrate({ dataDir: templateDir });
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
  project.provide("agentdDatabase", { mode: "embedded", templateDir, emptyDir });
  return () => rm(root, { recursive: true, force: true });
}

async function migrate(opts: { url?: string; dataDir?: string; migrations?: boolean }): Promise<void> {
  const db = await openDatabase({ url: opts.url, dataDir: opts.dataDir, maxConnections: 1 });
  try {
    if (opts.migrations === false) await db.sql`SELECT 1`;
    else await runMigrations(db.sql);
  } finally {
    await db.close();
  }
}
