// What happens when handling a request throws something nobody expected: it is
// logged (rate-limited, with the request's context, never its headers) and the
// one request fails; the process and every other call on it go on.
import { AsyncLocalStorage } from "node:async_hooks";
import { isDriverWriteAfterClose } from "../../shared/db/database.js";
import type { Logger } from "../../shared/log.js";

/** What is known about the request being handled, for logs: never headers (they carry keys). */
export interface RequestContext {
  method: string;
  path: string;
  httpVersion: string;
  contentType: string;
}

interface RequestScope {
  context: RequestContext;
  /** Ends this request's response or stream: the client sees a reset instead of waiting forever. */
  abort(): void;
}

/**
 * The request each piece of asynchronous work belongs to. The one port runs every request
 * handler inside it, so an error that escapes later (a timer, a promise nobody awaited) can be
 * tied back to its request by the last-resort guard.
 */
export const requestScope = new AsyncLocalStorage<RequestScope>();

const MAX_FIELD = 200;

export function requestContextOf(req: {
  method?: string | undefined;
  url?: string | undefined;
  httpVersion: string;
  headers: Record<string, unknown>;
}): RequestContext {
  const contentType = req.headers["content-type"];
  return {
    method: clip(req.method ?? ""),
    path: clip(req.url ?? ""),
    httpVersion: clip(req.httpVersion),
    contentType: clip(typeof contentType === "string" ? contentType : ""),
  };
}

function clip(text: string): string {
  return text.length > MAX_FIELD ? `${text.slice(0, MAX_FIELD)}…` : text;
}

export interface FailureReporter {
  report(error: unknown, context: object): void;
}

/**
 * Logs each distinct failure (error name and message, where) once per window, and at most
 * `maxPerWindow` lines per window whatever the variety: a client that can trigger a bug
 * must not be able to flood the logs too. What was held back is counted in one line.
 */
export function createFailureReporter(
  logger: Logger,
  opts: { windowMs?: number; maxPerWindow?: number; message?: string } = {},
): FailureReporter {
  const windowMs = opts.windowMs ?? 60_000;
  const maxPerWindow = opts.maxPerWindow ?? 10;
  const message = opts.message ?? "unexpected error while handling a request";
  let seen = new Set<string>();
  let logged = 0;
  let suppressed = 0;
  let timer: NodeJS.Timeout | undefined;

  const endWindow = () => {
    timer = undefined;
    if (suppressed > 0) logger.error({ suppressed, windowMs }, "further unexpected request errors were not logged");
    seen = new Set();
    logged = 0;
    suppressed = 0;
  };

  return {
    report(error, context) {
      const signature = `${errorName(error)}: ${errorMessage(error).slice(0, MAX_FIELD)} @ ${JSON.stringify(context).slice(0, 2 * MAX_FIELD)}`;
      if (timer === undefined) {
        timer = setTimeout(endWindow, windowMs);
        timer.unref();
      }
      if (seen.has(signature) || logged >= maxPerWindow) {
        suppressed++;
        return;
      }
      seen.add(signature);
      logged++;
      logger.error({ err: error, ...context }, message);
    },
  };
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Process-wide last resort, for errors that escape a request handler asynchronously (a throw in
 * a timer or event callback, a rejected promise nobody awaited). Node's default kills the whole
 * replica for these: every call and stream on it drops and its tasks wait out their lease. An
 * error that `requestScope` ties to a request is logged (rate-limited) and ends only that
 * request. Anything else keeps Node's default, exit with status 1 after a fatal log: an error
 * of unknown origin may have left shared state (pools, leases) broken, and a restart is then
 * the safe answer. Installed by the CLI, not by the library, since it changes process-wide
 * behaviour. Returns a function that removes it.
 */
export function installLastResortGuard(
  logger: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): () => void {
  const reporter = createFailureReporter(logger, {
    message: "uncaught error in request handling (the request was aborted, the process goes on)",
  });
  const handle = (origin: string) => (error: unknown) => {
    // The database layer's own guard handles (and recovers from) the driver's known timer bug.
    if (isDriverWriteAfterClose(error)) return;
    const scope = requestScope.getStore();
    if (scope === undefined) {
      logger.fatal({ err: error, origin }, "uncaught error outside request handling: exiting");
      exit(1);
      return;
    }
    reporter.report(error, { origin, ...scope.context });
    try {
      scope.abort();
    } catch {
      // The request is already gone: nothing left to end.
    }
  };
  const onException = handle("uncaughtException");
  const onRejection = handle("unhandledRejection");
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return () => {
    process.off("uncaughtException", onException);
    process.off("unhandledRejection", onRejection);
  };
}
