// Whole Postgres databases made and dropped through an admin URL (one with CREATEDB): the
// per-file test databases and their template (test/support/database.ts, global-setup.ts) and the
// benchmarks' database (bench/support.ts). No vitest import, so plain scripts can use it.
import postgres from "postgres";

export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withAdmin<T>(adminUrl: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export async function createPostgresDatabase(adminUrl: string, name: string, template: string): Promise<void> {
  await withAdmin(adminUrl, async (sql) => {
    // Copying a template fails while anyone is connected to it (55006); that
    // can only be another CREATE DATABASE from it, so wait and retry.
    for (let attempt = 1; ; attempt++) {
      try {
        await sql`CREATE DATABASE ${sql(name)} TEMPLATE ${sql(template)}`;
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== "55006" || attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
      }
    }
  });
}

export async function dropPostgresDatabase(adminUrl: string, name: string): Promise<void> {
  await withAdmin(adminUrl, (sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`);
}
