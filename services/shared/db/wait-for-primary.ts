// Start-up against a database that has no writable primary yet (a replica
// pointed at a standby, or started during a failover): instead of exiting,
// the process retries its first step (migrations) until a primary exists.
// Only "no primary reachable / read-only" waits: a configuration the server
// refuses (unknown database, failed authentication) fails at once, so a typo
// is not mistaken for an outage.
import type { Logger } from "../log.js";
import { isDatabaseUnavailable } from "./database.js";

/** SQLSTATEs and driver codes of a connection refused for its configuration, not for the server's state. */
const CONFIGURATION_CODES = new Set([
  "28P01", // invalid_password
  "28000", // invalid_authorization_specification (no such role, pg_hba rejects)
  "3D000", // invalid_catalog_name: the database does not exist
  "SASL_SIGNATURE_MISMATCH",
  "AUTH_TYPE_NOT_IMPLEMENTED",
]);

/** The configuration error inside `err` (or its causes), if the server refused the connection for its settings. */
export function configurationErrorOf(err: unknown): Error | undefined {
  const seen = new Set<unknown>();
  const visit = (value: unknown): Error | undefined => {
    if (typeof value !== "object" || value === null || seen.has(value)) return undefined;
    seen.add(value);
    const { code, cause, errors } = value as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === "string" && CONFIGURATION_CODES.has(code)) return value as Error;
    return visit(cause) ?? (Array.isArray(errors) ? errors.map(visit).find(Boolean) : undefined);
  };
  return visit(err);
}

export class DatabaseConfigurationError extends Error {
  override name = "DatabaseConfigurationError";
}

/**
 * Runs `attempt` until it succeeds, retrying every `retryMs` while the
 * database is unavailable (no writable primary, refused, read-only), with a
 * log line every `logEveryMs`. A configuration error, or any other error,
 * ends the wait by throwing. `waiting` is called once, on the first retry.
 */
export async function untilPrimary<T>(
  attempt: () => Promise<T>,
  opts: {
    logger: Logger;
    database: string;
    retryMs?: number;
    logEveryMs?: number;
    waiting?: () => void;
    signal?: AbortSignal;
  },
): Promise<T> {
  const retryMs = opts.retryMs ?? 250;
  const logEveryMs = opts.logEveryMs ?? 5000;
  const started = Date.now();
  let lastLog = 0;
  for (let tries = 0; ; tries++) {
    try {
      const result = await attempt();
      if (tries > 0)
        opts.logger.info(
          { database: opts.database, waitedMs: Date.now() - started },
          "a writable database primary is reachable; starting",
        );
      return result;
    } catch (error) {
      const refused = configurationErrorOf(error);
      if (refused) {
        throw new DatabaseConfigurationError(
          `the database refused agentd's connection: ${refused.message} (DATABASE_URL ${opts.database})`,
          { cause: error },
        );
      }
      if (!isDatabaseUnavailable(error) || opts.signal?.aborted) throw error;
      if (tries === 0) opts.waiting?.();
      if (Date.now() - lastLog >= logEveryMs) {
        lastLog = Date.now();
        // The URL shown is redacted; the error's own code says why (refused, read-only, no primary).
        opts.logger.warn(
          { database: opts.database, waitedMs: Date.now() - started, code: (error as { code?: unknown }).code },
          "waiting for a writable database primary (none of DATABASE_URL's hosts is one yet)",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }
}
