// Which of the database hosts is the writable primary. agentd only ever writes
// to a primary, so every new pool connection asks the locator where to go:
// the locator probes each host (pg_is_in_recovery() and transaction_read_only,
// through a one-connection client per host) and answers with the first
// writable one, or with none: the connection then fails at once with
// AGENTD_NO_PRIMARY (UNAVAILABLE), instead of postgres.js's own multi-host
// loop, which accepts a hot standby for read-write and, with no primary,
// reconnects without pause and never fails the waiting query.
import { connect, type Socket } from "node:net";
import { Duplex } from "node:stream";
import postgres from "postgres";
import { type Logger, silentLogger } from "../log.js";
import type { DatabaseUrl, HostPort } from "./database-url.js";

/** The error code of a connection refused because no host is a writable primary. */
export const NO_PRIMARY = "AGENTD_NO_PRIMARY";

export interface PrimaryLocator {
  /** The writable primary, probing the hosts when it is not known (bounded by ~`probeTimeoutMs`). */
  get(): Promise<HostPort | undefined>;
  /** Forget the primary (all hosts, or only when it is `host`): the next `get` probes again. */
  invalidate(host?: HostPort): void;
  /** A socket to the primary for postgres.js's `socket` option; one that fails with NO_PRIMARY when there is none. */
  socket(): Promise<Socket>;
  end(): Promise<void>;
}

/** After a probe found no primary, the next probe waits this long: a burst of connections makes one probe. */
const MISS_HOLD_MS = 200;

export function createPrimaryLocator(opts: {
  url: DatabaseUrl;
  logger?: Logger;
  probeTimeoutMs?: number;
  backoff: (failures: number) => number;
  /** Called when the primary found is another host than the one before (a failover). */
  onMoved?: () => void;
}): PrimaryLocator {
  const logger = opts.logger ?? silentLogger();
  const probeTimeoutMs = opts.probeTimeoutMs ?? 2000;
  const probes = opts.url.hosts.map((host) => ({
    host,
    sql: postgres(opts.url.forHost(host), {
      max: 1,
      connect_timeout: Math.ceil(probeTimeoutMs / 1000),
      backoff: opts.backoff,
      idle_timeout: 30,
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: "agentd-probe" },
    }),
  }));
  let current: HostPort | undefined;
  let previous: HostPort | undefined;
  let locating: Promise<HostPort | undefined> | undefined;
  let lastMiss = 0;
  let reportedMissing = false;
  let ended = false;
  // What a host answered that no wait will change (unknown database, failed authentication):
  // carried as the cause of NO_PRIMARY, so that start-up can fail fast on it.
  let refusal: unknown;

  async function writable(probe: (typeof probes)[number]): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), probeTimeoutMs)));
    const check = probe.sql<{ standby: boolean; ro: string }[]>`
      SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS ro
    `.then(
      ([row]) => row !== undefined && !row.standby && row.ro === "off",
      (error: unknown) => {
        if (isRefusal(error)) refusal = error;
        return false;
      },
    );
    try {
      return await Promise.race([check, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async function locate(): Promise<HostPort | undefined> {
    refusal = undefined;
    const results = await Promise.all(probes.map(writable));
    const found = probes.filter((_, i) => results[i]).map((p) => p.host);
    if (found.length > 1) {
      // Two writable primaries: the HA manager did not fence the old one (docs/high-availability.md).
      logger.error(
        { primaries: found.length },
        "more than one database host accepts writes; using the first in DATABASE_URL order",
      );
    }
    const primary = found[0];
    if (primary) {
      const moved = previous !== undefined && !same(previous, primary);
      if (moved)
        logger.warn(
          { host: primary.host, port: primary.port },
          "the database primary moved to another host (failover)",
        );
      else if (reportedMissing) logger.info({ host: primary.host, port: primary.port }, "database primary found");
      reportedMissing = false;
      current = primary;
      previous = primary;
      if (moved) opts.onMoved?.();
    } else {
      lastMiss = Date.now();
      if (!reportedMissing)
        logger.warn(
          { hosts: probes.length },
          "no database host is a writable primary; calls answer UNAVAILABLE until one is",
        );
      reportedMissing = true;
    }
    return primary;
  }

  const locator: PrimaryLocator = {
    async get() {
      if (current) return current;
      if (locating) return locating;
      if (ended || Date.now() - lastMiss < MISS_HOLD_MS) return undefined;
      locating = locate().finally(() => {
        locating = undefined;
      });
      return locating;
    },
    invalidate(host) {
      if (!host || (current && same(current, host))) current = undefined;
    },
    async socket() {
      const target = await locator.get();
      if (!target) {
        const error = new Error(
          "no database host is a writable primary",
          refusal === undefined ? {} : { cause: refusal },
        );
        return failingSocket(Object.assign(error, { code: NO_PRIMARY }));
      }
      const socket = connect(target.port, target.host);
      // postgres.js reads these for TLS (SNI, verify-full's host name) and its error messages.
      Object.assign(socket, { host: target.host, port: target.port });
      // A refused or broken connection: the primary may have moved.
      socket.once("error", () => locator.invalidate(target));
      keepErrorsHandled(socket);
      return socket;
    },
    async end() {
      ended = true;
      await Promise.all(probes.map((p) => p.sql.end({ timeout: 1 }).catch(() => {})));
    },
  };
  return locator;
}

/**
 * A stand-in socket that fails with `error` once postgres.js has written its
 * start-up message to it. Failing earlier would leave postgres.js 3.4.9 with a
 * cancelled write timer that it never clears (connection.js nextWriteTimer),
 * and every later connection of that slot would time out without sending.
 */
function failingSocket(error: Error): Socket {
  let failed = false;
  const fail = (stream: Duplex) => {
    if (failed) return;
    failed = true;
    setImmediate(() => stream.destroy(error));
  };
  const stream = new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      callback();
      fail(stream);
    },
  });
  // Nothing written after a while: fail anyway.
  setTimeout(() => fail(stream), 100).unref();
  return stream as unknown as Socket;
}

/**
 * postgres.js removes every listener of a closed socket; an error the socket
 * emits afterwards (a late ECONNRESET) would then be unhandled and end the
 * process. One no-op handler stays.
 */
function keepErrorsHandled(socket: Socket): void {
  const ignore = () => {};
  socket.on("error", ignore);
  const removeAll = socket.removeAllListeners.bind(socket);
  socket.removeAllListeners = ((...args: Parameters<Socket["removeAllListeners"]>) => {
    removeAll(...args);
    socket.on("error", ignore);
    return socket;
  }) as Socket["removeAllListeners"];
}

/** Authentication failed (SQLSTATE class 28, or the driver's SASL codes) or the database does not exist (3D000). */
function isRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof code === "string" &&
    (code.startsWith("28") || ["3D000", "SASL_SIGNATURE_MISMATCH", "AUTH_TYPE_NOT_IMPLEMENTED"].includes(code))
  );
}

function same(a: HostPort, b: HostPort): boolean {
  return a.host === b.host && a.port === b.port;
}

/**
 * postgres.js options that make a client connect only to the primary: host
 * choice through the locator, and the server's role checked on every new
 * connection (target_session_attrs=primary reads in_hot_standby, reported by
 * Postgres 14+ at start-up). `onReadOnly` runs when a connection learns that
 * its server is read-only or a standby (at start-up or later, through
 * ParameterStatus): the caller recycles its pool.
 */
export function primaryOnlyOptions(locator: PrimaryLocator, onReadOnly: () => void) {
  return {
    socket: () => locator.socket(),
    target_session_attrs: "primary" as const,
    onparameter: (key: string, value: string) => {
      if ((key === "in_hot_standby" || key === "default_transaction_read_only") && value === "on") {
        locator.invalidate();
        onReadOnly();
      }
    },
  };
}
