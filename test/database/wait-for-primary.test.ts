// Start-up's wait for a writable primary: it retries while the database is
// unavailable (no primary, refused, read-only), logging now and then without
// the password, and gives up at once on a configuration the server refuses.
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { NO_PRIMARY } from "../../services/shared/db/primary-locator.js";
import {
  configurationErrorOf,
  DatabaseConfigurationError,
  untilPrimary,
} from "../../services/shared/db/wait-for-primary.js";

function capturingLogger() {
  const lines: string[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(line) });
  return { logger, lines };
}

describe("untilPrimary", () => {
  it("retries while no host is a writable primary, then returns what the attempt returned", async () => {
    let tries = 0;
    let waiting = 0;
    const { logger, lines } = capturingLogger();
    const result = await untilPrimary(
      async () => {
        if (++tries < 4)
          throw Object.assign(new Error("no database host is a writable primary"), {
            code: tries % 2 ? NO_PRIMARY : "25006",
          });
        return "migrated";
      },
      { logger, database: "postgres://u:***@h/db", retryMs: 5, waiting: () => waiting++ },
    );
    expect(result).toBe("migrated");
    expect(
      lines.some((l) => l.includes("waiting for a writable database primary") && l.includes("postgres://u:***@h/db")),
    ).toBe(true);
    expect(tries).toBe(4);
    expect(waiting).toBe(1);
  });

  it("ends at once on an unknown database or failed authentication, even behind NO_PRIMARY, with the server's message", async () => {
    for (const code of ["3D000", "28P01", "28000"]) {
      let tries = 0;
      const refusal = Object.assign(new Error(`refused (${code})`), { code });
      const error = await untilPrimary(
        async () => {
          tries++;
          throw Object.assign(new Error("no database host is a writable primary", { cause: refusal }), {
            code: NO_PRIMARY,
          });
        },
        { logger: capturingLogger().logger, database: "postgres://u:***@h/db", retryMs: 5 },
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DatabaseConfigurationError);
      expect((error as Error).message).toContain(`refused (${code})`);
      expect((error as Error).message).toContain("postgres://u:***@h/db");
      expect(tries).toBe(1);
    }
    expect(configurationErrorOf(Object.assign(new Error("x"), { code: "ECONNREFUSED" }))).toBeUndefined();
  });

  it("rethrows any other error (a broken migration) instead of waiting", async () => {
    const broken = Object.assign(new Error("syntax error"), { code: "42601" });
    await expect(
      untilPrimary(async () => Promise.reject(broken), { logger: capturingLogger().logger, database: "x", retryMs: 5 }),
    ).rejects.toBe(broken);
  });
});
