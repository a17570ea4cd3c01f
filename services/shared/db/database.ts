// The one way code reaches Postgres: a postgres.js client, either to the real
// server named by a URL or to embedded PGlite on a loopback port.
import postgres from "postgres";
import { type Logger, silentLogger } from "../log.js";
import { parseDatabaseUrl } from "./database-url.js";
import { startEmbeddedPostgres } from "./embedded.js";
import { createPrimaryLocator, NO_PRIMARY, type PrimaryLocator, primaryOnlyOptions } from "./primary-locator.js";
import { boundStatement, boundTransaction, STATEMENT_TIMEOUT } from "./statement-deadline.js";

/** A postgres.js client (a pool of connections). */
export type Sql = postgres.Sql;
/** The client inside `sql.begin(async (tx) => …)`: same queries, no begin/end. */
export type Tx = postgres.TransactionSql;
/** Either of them: for a function that only runs queries, inside a transaction or not. */
export type Queryable = postgres.ISql;

export interface Database {
  sql: Sql;
  /** True when this process runs PGlite itself (no DATABASE_URL). */
  embedded: boolean;
  /** Where `sql` connects; for embedded, other processes may use it too. */
  url: string;
  /** Ends the client (letting running queries finish, 5 s at most), then the embedded server. */
  close(): Promise<void>;
  /** Resolves when the database answers and accepts writes (a primary, not read-only); rejects otherwise. */
  ping(): Promise<void>;
  /** Calls `listener` whenever the primary moves to another host of the URL (a failover); returns the unsubscribe. */
  onPrimaryMoved(listener: () => void): () => void;
}

// int8 (bigint, count(*), sequences) comes back as a JS number, not postgres.js's
// default string. Every int8 here (event sequences, timeouts in ms, counts)
// stays far below 2^53.
const INT8_AS_NUMBER = {
  int8: { to: 20, from: [20], serialize: (value: number) => String(value), parse: (raw: string) => Number(raw) },
};

const ignoreNotice = () => {};

/**
 * Reconnect behaviour for every real-Postgres client (the pool and the wake-up
 * bus). postgres.js's default backoff grows as 3^failures/100 s up to 20 s,
 * shared by the whole pool, so after a 15 s outage the first connection was
 * tried again only up to 20 s later. Here a failed connection is retried
 * within half a second at most, and a connection attempt gives up after 2 s,
 * so a call during an outage answers UNAVAILABLE promptly instead of at the
 * client's deadline, and the first call after the database returns succeeds.
 */
const RECONNECT_OPTIONS = {
  /** Seconds a connection attempt (TCP, TLS and startup) may take. */
  connect_timeout: 2,
  /** Seconds before the next attempt after a failed connection: 50 ms doubling, capped at 0.5 s, jittered. */
  backoff: (failures: number) => Math.min(0.05 * 2 ** failures, 0.5) * (0.5 + Math.random() / 2),
} as const;

export async function openDatabase(opts: {
  /** Real Postgres. Without it, embedded PGlite in `dataDir`. */
  url?: string;
  dataDir?: string;
  /** Real Postgres only (default 10); the embedded database always gets 1. */
  maxConnections?: number;
  logger?: Logger;
}): Promise<Database> {
  const logger = opts.logger ?? silentLogger();
  if (opts.url) {
    const url = opts.url;
    const parsed = parseDatabaseUrl(url);
    const moved = new Set<() => void>();
    const client = createPrimaryClient(
      url,
      {
        max: opts.maxConnections ?? 10,
        // Give idle connections back to the server; replicas times pool size adds up.
        idle_timeout: 60,
        types: INT8_AS_NUMBER,
        connection: { application_name: "agentd" },
      },
      logger,
      {
        onPrimaryMoved: () => {
          for (const listener of moved) listener();
        },
      },
    );
    logger.debug({ database: parsed.redacted, hosts: parsed.hosts.length }, "database client created");
    return {
      sql: client.sql,
      embedded: false,
      url,
      close: () => client.end(),
      ping: () => checkWritable(client.sql),
      onPrimaryMoved(listener) {
        moved.add(listener);
        return () => moved.delete(listener);
      },
    };
  }
  if (!opts.dataDir) throw new Error("openDatabase needs a url or a dataDir");

  const server = await startEmbeddedPostgres({ dataDir: opts.dataDir, logger });
  // PGlite is one session; the embedded server lends it to one connection at a
  // time, so more connections would only queue. One connection, kept open.
  const sql = postgres(server.url, {
    max: 1,
    backoff: RECONNECT_OPTIONS.backoff,
    // Longer than real Postgres: other processes' connections queue inside the embedded server for its one session.
    connect_timeout: 10,
    idle_timeout: 0,
    max_lifetime: 0,
    onnotice: ignoreNotice,
    types: INT8_AS_NUMBER,
    connection: { application_name: "agentd" },
  }) as unknown as Sql;
  return {
    sql,
    embedded: true,
    url: server.url,
    ping: async () => {
      await sql`SELECT 1`;
    },
    // One embedded server: it cannot fail over.
    onPrimaryMoved: () => () => {},
    async close() {
      try {
        await sql.end({ timeout: 5 });
      } finally {
        await server.close();
      }
    },
  };
}

/**
 * postgres.js 3.4.9 can run a deferred socket write after its connection closed
 * (porsager/postgres#1154, #1208; fix proposed upstream in PR #1209, not
 * released). It throws from the timer queue, where no caller can catch it, so
 * the process would exit; and the connection it happened on can never send
 * again. Seen here when Postgres stops under load. Until the driver is fixed,
 * that one error is caught at the process level, and every client made by
 * `createRecyclableClient` swaps its pool for a fresh one.
 */
export function isDriverWriteAfterClose(error: unknown): boolean {
  if (!(error instanceof TypeError) || !error.message.includes("'write'")) return false;
  const stack = error.stack ?? "";
  return stack.includes("nextWrite") && /postgres[\\/]src[\\/]connection\.js/.test(stack);
}

const recyclers = new Set<() => void>();
let guardInstalled = false;

function installDriverGuard(logger: Logger): void {
  if (guardInstalled) return;
  guardInstalled = true;
  let lastLog = 0;
  process.on("uncaughtException", (error) => {
    if (isDriverWriteAfterClose(error)) {
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        logger.warn(
          { err: error },
          "database driver wrote to a closed connection (porsager/postgres#1154); reopening the pool",
        );
      }
      for (const recycle of recyclers) recycle();
      return;
    }
    // Anything else: another handler decides, or the process ends as Node would have ended it.
    if (process.listenerCount("uncaughtException") > 1) return;
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}

/**
 * A postgres.js client behind a stable handle: `sql` always reaches the current
 * pool, and `recycle` replaces that pool (the old one finishes what it has).
 */
function createRecyclableClient(
  create: (requestRecycle: () => void) => Sql,
  logger: Logger,
): { sql: Sql; end(): Promise<void> } {
  const retired = new Set<Promise<void>>();
  let ended = false;
  let lastRequested = 0;
  // A connection that found a read-only server asks for a fresh pool: the others may be on it too. At most once a second.
  const requestRecycle = () => {
    if (Date.now() - lastRequested < 1000) return;
    lastRequested = Date.now();
    queueMicrotask(recycle);
  };
  let current = create(requestRecycle);
  const recycle = () => {
    if (ended) return;
    const old = current;
    current = create(requestRecycle);
    // Kept until ended, so that `end` waits for it; recycling may repeat for as long as a server stays read-only.
    const ending: Promise<void> = old
      .end({ timeout: 5 })
      .catch(() => {})
      .finally(() => retired.delete(ending));
    retired.add(ending);
  };
  recyclers.add(recycle);
  installDriverGuard(logger);
  // Calls (tagged templates, helpers) and properties (begin, json, end…) go to the current pool.
  // Statements and transactions made inside an RPC get its statement deadline (statement-deadline.ts).
  const pool = () => current as unknown as Record<PropertyKey, (...a: unknown[]) => unknown>;
  const sql = new Proxy(function recyclableSql() {} as unknown as Sql, {
    apply: (_target, _this, args: unknown[]) =>
      boundStatement((current as unknown as (...a: unknown[]) => unknown)(...args)),
    get: (_target, prop) => {
      if (prop === "unsafe") return (...a: unknown[]) => boundStatement(pool().unsafe!(...a));
      if (prop === "begin") return (...a: unknown[]) => boundTransaction(pool().begin!(...a) as Promise<unknown>);
      return pool()[prop];
    },
  });
  return {
    sql,
    async end() {
      ended = true;
      recyclers.delete(recycle);
      await Promise.all([current.end({ timeout: 5 }), ...retired]);
    },
  };
}

/** Postgres.js options for every real-Postgres client of agentd (the pool, the wake-up bus). */
export type ClientOptions = postgres.Options<Record<string, postgres.PostgresType>>;

/**
 * A recyclable postgres.js client that only ever works on the writable primary
 * among the URL's hosts (see primary-locator.ts), with bounded reconnects. A
 * URL naming a Unix socket is handed to postgres.js as it is.
 */
export function createPrimaryClient(
  url: string,
  options: ClientOptions,
  logger: Logger,
  hooks: { onPrimaryMoved?: () => void } = {},
): { sql: Sql; locator: PrimaryLocator | undefined; end(): Promise<void> } {
  const parsed = parseDatabaseUrl(url);
  const first = parsed.hosts[0];
  const locator = first
    ? createPrimaryLocator({
        url: parsed,
        logger,
        backoff: RECONNECT_OPTIONS.backoff,
        ...(hooks.onPrimaryMoved ? { onMoved: hooks.onPrimaryMoved } : {}),
      })
    : undefined;
  const client = createRecyclableClient(
    (requestRecycle) =>
      postgres(first && locator ? parsed.forHost(first) : url, {
        ...RECONNECT_OPTIONS,
        onnotice: ignoreNotice,
        ...options,
        ...(locator
          ? primaryOnlyOptions(locator, () => {
              logger.warn("a database connection is on a read-only server; reopening the pool on the primary");
              requestRecycle();
            })
          : {}),
      }) as unknown as Sql,
    logger,
  );
  return {
    sql: client.sql,
    locator,
    async end() {
      await client.end();
      await locator?.end();
    },
  };
}

/** Rejects unless the server answers and takes writes: health reports NOT_SERVING on a standby too. */
async function checkWritable(sql: Queryable): Promise<void> {
  const [row] = await sql<{ standby: boolean; ro: string }[]>`
    SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS ro
  `;
  if (!row || row.standby || row.ro !== "off") {
    throw Object.assign(new Error("the database is read-only (a standby, or a primary being demoted)"), {
      code: "25006",
    });
  }
}

// Errors that mean "the database cannot be reached right now" — an RPC maps them
// to UNAVAILABLE (retry later), never INTERNAL.
const UNAVAILABLE_CODES = new Set([
  // postgres.js
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  // Node sockets and DNS
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  // Postgres SQLSTATE: shutting down, starting up, crashed, too many connections
  "57P01",
  "57P02",
  "57P03",
  "53300",
  // Connected to a read-only server (a hot standby, or a primary being demoted): writes must wait for a primary.
  "25006",
  // No host of a multi-host DATABASE_URL is a writable primary (failover in progress).
  NO_PRIMARY,
  // A statement of an RPC got no answer within AGENTD_DB_STATEMENT_TIMEOUT_MS (a hung server, a stuck lock).
  STATEMENT_TIMEOUT,
]);

/** A deadlock or serialization failure: the transaction rolled back, so the call is safe to retry. */
export function isTransactionConflict(error: unknown): boolean {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return code === "40P01" || code === "40001";
}

export function isDatabaseUnavailable(err: unknown): boolean {
  const seen = new Set<unknown>();
  const visit = (value: unknown): boolean => {
    if (typeof value !== "object" || value === null || seen.has(value)) return false;
    seen.add(value);
    const { code, cause, errors } = value as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === "string" && (UNAVAILABLE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true;
    // Wrapped errors keep the original in `cause`; a failed dual-stack connect is an AggregateError.
    if (visit(cause)) return true;
    return Array.isArray(errors) && errors.some(visit);
  };
  return visit(err);
}
