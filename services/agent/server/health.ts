// grpc.health.v1, from the public health checking protocol: Check, List and Watch
// over a registry of serving statuses. "" is the whole server and starts SERVING.
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../../gen/grpc/health/v1/health_pb.js";
import { notFound } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";

type HealthStatus = "SERVING" | "NOT_SERVING";

export interface HealthService {
  routes: (router: ConnectRouter) => void;
  /** Registers or updates a service ("" = whole server); Watch streams see the change. Ignored after shutdown. */
  setStatus(service: string, status: HealthStatus): void;
  /** Marks every service NOT_SERVING for good; Watch streams send that and end. */
  shutdown(): void;
  /** While a dependency every call needs (the database) is down, every service reads NOT_SERVING. */
  setDependencyDown(down: boolean): void;
}

export function createHealthService(): HealthService {
  const statuses = new Map<string, ServingStatus>([["", ServingStatus.SERVING]]);
  const changes = createChangeFeed();
  let terminal = false;
  let dependencyDown = false;
  const effective = (status: ServingStatus | undefined) =>
    status !== undefined && dependencyDown ? ServingStatus.NOT_SERVING : status;

  const response = (status: ServingStatus) => create(HealthCheckResponseSchema, { status });

  const routes = (router: ConnectRouter) =>
    router.service(Health, {
      async check(req) {
        const status = effective(statuses.get(req.service));
        if (status === undefined) throw notFound("service", req.service);
        return response(status);
      },
      async list() {
        const entries = [...statuses].map(([name, status]) => [name, response(effective(status) ?? status)] as const);
        return create(HealthListResponseSchema, { statuses: Object.fromEntries(entries) });
      },
      // The current status, then each change. An unknown service is SERVICE_UNKNOWN and the
      // call stays open, as the spec asks, in case it gets registered later. Rapid flips
      // between two wake-ups are coalesced: a watcher always gets the latest status.
      async *watch(req, ctx) {
        let sent: ServingStatus | undefined;
        for (;;) {
          const seen = changes.version(); // read first, so a change during the yield is not missed
          const status = effective(statuses.get(req.service)) ?? ServingStatus.SERVICE_UNKNOWN;
          if (status !== sent) {
            yield response(status);
            sent = status;
          }
          if (terminal || ctx.signal.aborted) return;
          if (changes.version() === seen) await changes.wait(ctx.signal);
        }
      },
    });

  return {
    routes,
    setStatus(service, status) {
      if (terminal) return;
      const next = status === "SERVING" ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
      if (statuses.get(service) === next) return;
      statuses.set(service, next);
      changes.fire();
    },
    setDependencyDown(down) {
      if (terminal || dependencyDown === down) return;
      dependencyDown = down;
      changes.fire();
    },
    shutdown() {
      if (terminal) return;
      terminal = true;
      for (const service of statuses.keys()) statuses.set(service, ServingStatus.NOT_SERVING);
      changes.fire();
    },
  };
}

/**
 * A version number and the waiters for its next bump. Waiters are removed when they wake or
 * their signal aborts, so watchers that come and go leave nothing behind.
 */
function createChangeFeed() {
  let version = 0;
  const waiters = new Set<() => void>();
  return {
    version: () => version,
    fire() {
      version++;
      for (const wake of [...waiters]) wake();
    },
    wait(signal: AbortSignal): Promise<void> {
      if (signal.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const wake = () => {
          waiters.delete(wake);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        waiters.add(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    },
  };
}

/**
 * Checks the database every `intervalMs` while it answers, every `downIntervalMs`
 * while it does not (each check bounded by `timeoutMs`), and reports it through
 * `setDependencyDown`: health reads NOT_SERVING within about `intervalMs` +
 * `timeoutMs` of an outage and SERVING again within about `downIntervalMs` of the
 * return. Nothing is cached beyond the last check. (Slow while healthy: an idle
 * process should cost its database well under a statement per second.)
 */
export function monitorDatabase(opts: {
  health: Pick<HealthService, "setDependencyDown">;
  ping: () => Promise<unknown>;
  logger: Logger;
  intervalMs?: number;
  downIntervalMs?: number;
  timeoutMs?: number;
}): { stop(): void } {
  const intervalMs = opts.intervalMs ?? 5000;
  const downIntervalMs = opts.downIntervalMs ?? 500;
  const timeoutMs = opts.timeoutMs ?? 2000;
  let down = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  async function check(): Promise<void> {
    let giveUp: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      giveUp = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([opts.ping(), timedOut]);
      if (down) opts.logger.info("the database answers again; health is SERVING");
      down = false;
    } catch (err) {
      if (!down) opts.logger.warn({ err }, "the database does not answer; health is NOT_SERVING");
      down = true;
    } finally {
      clearTimeout(giveUp);
    }
    if (!stopped) opts.health.setDependencyDown(down);
  }

  const loop = () => {
    timer = setTimeout(
      () => {
        check().finally(() => {
          if (!stopped) loop();
        });
      },
      down ? downIntervalMs : intervalMs,
    );
  };
  loop();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
