// Plain-HTTP probes for load balancers and orchestrators, beside grpc.health.v1:
//   GET /healthz  200 while the process serves HTTP at all (liveness);
//   GET /readyz   200 when the database answers, every migration this code knows is
//                 applied, and the server is not shutting down; 503 otherwise (readiness).
// Open like grpc.health.v1; the answers name a reason, never a driver message or address.
import type { Sql } from "../../shared/db/database.js";
import { listMigrations } from "../../shared/db/migrate.js";
import type { Logger } from "../../shared/log.js";
import type { NodeHandlerFn } from "./one-port.js";

type Request = Parameters<NodeHandlerFn>[0];
type Response = Parameters<NodeHandlerFn>[1];

type NotReadyReason = "shutting_down" | "database_unreachable" | "migrations_pending";

export interface HttpProbes {
  /** Serves /healthz and /readyz; false for any other path. */
  handle(req: Request, res: Response): boolean;
  /** From now on /readyz answers 503 shutting_down (SIGTERM, before the listener closes). */
  shutdown(): void;
  /** The readiness verdict, as /readyz computes it. */
  check(): Promise<{ ready: true } | { ready: false; reason: NotReadyReason }>;
}

/** A database that takes longer than this to answer counts as unreachable. */
const DB_CHECK_TIMEOUT_MS = 2_000;

export function createHttpProbes(deps: { sql: Sql; logger: Logger; migrationsDir?: string }): HttpProbes {
  let shuttingDown = false;
  // The migrations this code needs: read once, they do not change while it runs.
  let known: Promise<string[]> | undefined;
  const required = () => {
    known ??= listMigrations(deps.migrationsDir).then((list) => list.map((m) => m.version));
    return known;
  };

  async function databaseState(): Promise<"ok" | "database_unreachable" | "migrations_pending"> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), DB_CHECK_TIMEOUT_MS);
    });
    try {
      const query = deps.sql<{ version: string }[]>`SELECT version FROM schema_migrations`;
      const rows = await Promise.race([query, timeout]);
      if (rows === "timeout") return "database_unreachable";
      const applied = new Set(rows.map((r) => r.version));
      return (await required()).every((v) => applied.has(v)) ? "ok" : "migrations_pending";
    } catch (err) {
      // No schema_migrations table at all is a database that was never migrated.
      if ((err as { code?: string }).code === "42P01") return "migrations_pending";
      deps.logger.warn({ err }, "readiness: database check failed");
      return "database_unreachable";
    } finally {
      clearTimeout(timer);
    }
  }

  async function check(): ReturnType<HttpProbes["check"]> {
    if (shuttingDown) return { ready: false, reason: "shutting_down" };
    const state = await databaseState();
    if (shuttingDown) return { ready: false, reason: "shutting_down" };
    return state === "ok" ? { ready: true } : { ready: false, reason: state };
  }

  const reply = (res: Response, status: number, body: Record<string, string>) => {
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };

  return {
    shutdown() {
      shuttingDown = true;
    },
    check,
    handle(req, res) {
      const path = (req.url ?? "").split("?", 1)[0];
      if (path !== "/healthz" && path !== "/readyz") return false;
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD" });
        res.end();
        return true;
      }
      if (path === "/healthz") {
        reply(res, 200, { status: "ok" });
        return true;
      }
      check().then(
        (verdict) =>
          verdict.ready
            ? reply(res, 200, { status: "ready" })
            : reply(res, 503, { status: "not_ready", reason: verdict.reason }),
        () => reply(res, 503, { status: "not_ready", reason: "database_unreachable" }),
      );
      return true;
    },
  };
}
