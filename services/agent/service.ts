// The agent service assembled: Connect routes for every service on one port,
// and the task runner. Built unstarted, so tests and the CLI share one path.
// Assembly steps, in order: the shared parts, the task side (writer, runner, TaskDeps),
// the RPC handler options (interceptors, HTTP fallback, routes), then start and close.
import { hostname } from "node:os";
import * as grpc from "@grpc/grpc-js";
import { file_agentd_v1_agent_service } from "../../gen/agentd/v1/agent_service_pb.js";
import { file_agentd_v1_auth_service } from "../../gen/agentd/v1/auth_service_pb.js";
import { file_agentd_v1_key_service } from "../../gen/agentd/v1/key_service_pb.js";
import { file_agentd_v1_task_service } from "../../gen/agentd/v1/task_service_pb.js";
import { file_agentd_v1_webhook_service } from "../../gen/agentd/v1/webhook_service_pb.js";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import { createAccessTokens, databaseAccessTokenKey } from "../shared/auth/access-tokens.js";
import { createAuthenticator } from "../shared/auth/authenticator.js";
import type { Config } from "../shared/config.js";
import type { Database } from "../shared/db/database.js";
import { withStatementDeadline } from "../shared/db/statement-deadline.js";
import { newId } from "../shared/ids.js";
import type { Logger } from "../shared/log.js";
import type { WakeupBus } from "../shared/wakeup/bus.js";
import { createAddressGuard } from "../shared/webhooks/address-guard.js";
import type { AgentRegistry } from "./agents/registry.js";
import { agentServiceRoutes } from "./handlers/agent-service.js";
import { authServiceRoutes } from "./handlers/auth-service.js";
import { createDatabaseGate } from "./handlers/database-gate.js";
import { authenticateBeforeBody, authInterceptor, edgeInterceptor, inputInterceptor } from "./handlers/interceptors.js";
import { keyServiceRoutes } from "./handlers/key-service.js";
import { taskServiceRoutes } from "./handlers/task-service.js";
import { tokenLimitsInterceptor } from "./handlers/token-limits.js";
import { webhookServiceRoutes } from "./handlers/webhook-service.js";
import { rpcObserver } from "./observe/rpc-observer.js";
import { createServiceMetrics } from "./observe/service-metrics.js";
import { observeTaskWriter } from "./observe/task-observer.js";
import { createWebhookOutbox } from "./outbox/outbox.js";
import { createTaskRunner, type TaskRunner } from "./runner/task-runner.js";
import { createApiDocs } from "./server/api-docs.js";
import { createConsoleSite } from "./server/console.js";
import { withCors } from "./server/cors.js";
import { addConnectRoutes, checkBeforeBody, type GrpcJsAdapterOptions } from "./server/grpc-js/index.js";
import { createGrpcJsInjector } from "./server/grpc-js/injector.js";
import { createHealthService, monitorDatabase } from "./server/health.js";
import { createHttpProbes } from "./server/http-health.js";
import { isMetricsRequest, listenMetrics, type MetricsListener } from "./server/metrics-listener.js";
import { listenOnePort, type OnePortServer } from "./server/one-port.js";
import { createReflectionRoutes } from "./server/reflection.js";
import { createRpcHandler, type RpcHandlerOptions } from "./server/rpc-handler.js";
import { createTlsTerminator } from "./server/tls.js";
import { findTask } from "./store/find-task.js";
import { createTaskWriter, type TaskWriter } from "./store/task-writer.js";
import type { EventHub } from "./streams/event-hub.js";
import { connectionContext } from "./streams/stream-limits.js";
import { createStreaming } from "./streams/streaming.js";
import type { TaskDeps } from "./tasks/deps.js";
import { startInputExpirySweep } from "./tasks/expire-inputs.js";
import { RunSlots } from "./tasks/run-slots.js";
import { createTaskWaiters, type TaskWaiters } from "./tasks/task-waiters.js";
import { createTaskWebhookCheck } from "./webhooks/check-task-webhook.js";

export interface AgentServiceDeps {
  db: Database;
  bus: WakeupBus;
  registry: AgentRegistry;
  config: Config;
  logger: Logger;
}

export interface RunningAgentService {
  server: OnePortServer;
  runner: TaskRunner;
  /** GET /metrics on its own port when AGENTD_METRICS_PORT is set. */
  metrics?: MetricsListener;
  /** Reads the TLS certificate and key again (SIGHUP); throws, keeping the old ones, if they are unusable. No-op without TLS. */
  reloadTls(): Promise<void>;
  /** Graceful: stop accepting, let calls and tasks finish within the grace period, hand the rest back. */
  close(): Promise<void>;
}

/** How long deltas are coalesced before they are written (DESIGN.md rule 2). */
const DELTA_WINDOW_MS = 30;

export function createAgentService(deps: AgentServiceDeps) {
  const { db, bus, config, logger } = deps;
  // Access tokens for browsers (AuthService): HS256 under a deployment secret (migration 0007).
  const tokens = createAccessTokens(databaseAccessTokenKey(db.sql));
  const auth = createAuthenticator(db.sql, { tokens });
  // Event hub, stream caps, SSE and /metrics (services/agent/streams); the service's own metrics share its registry.
  const streaming = createStreaming({ sql: db.sql, bus, auth, logger, config });
  const metrics = createServiceMetrics({
    registry: streaming.metrics.registry,
    sql: db.sql,
    poolMax: db.embedded ? 1 : config.dbMaxConnections,
  });
  // The webhook outbox is written in the same transaction as task events; the notifier delivers.
  // Built here, not passed in, so that no entry point can run without it and silently lose webhooks.
  const outbox = createWebhookOutbox({ bus, sql: db.sql, maxPayloadBytes: config.webhookMaxPayloadBytes });
  const { writer, runner, taskDeps, urlPolicy } = buildTaskSide(deps, metrics, outbox, streaming.hub);
  const health = createHealthService();
  // GET /healthz and /readyz for HTTP load balancers, beside grpc.health.v1.
  const probes = createHttpProbes({ sql: db.sql, logger });
  const gate = createDatabaseGate();
  const rpc = rpcOptions(deps, { auth, tokens, streaming, metrics, outbox, taskDeps, urlPolicy, health, probes, gate });
  const handler = createRpcHandler(rpc);
  const grpcJs =
    config.grpcServer === "grpc-js"
      ? createGrpcJsServer(rpc, config, authenticateBeforeBody(auth, config.dbStatementTimeoutMs))
      : undefined;
  const waiters = taskDeps.waiters;
  const parts: Assembly = { streaming, writer, runner, health, probes, gate, handler, grpcJs, metrics, waiters };

  return {
    /** Every RPC of the service, unstarted: the in-memory test tier serves them with createRouterTransport. */
    routes: rpc.routes,
    /** Listens and starts the runner; with `databaseReady` pending, listens only (UNAVAILABLE, NOT_SERVING) and starts the rest once it resolves. */
    async start(opts: { databaseReady?: Promise<void> } = {}): Promise<RunningAgentService> {
      return startService(deps, parts, opts);
    },
  };
}

/** What start() and close() work with, built by createAgentService. */
interface Assembly {
  streaming: ReturnType<typeof createStreaming>;
  writer: TaskWriter;
  runner: TaskRunner;
  health: ReturnType<typeof createHealthService>;
  probes: ReturnType<typeof createHttpProbes>;
  gate: ReturnType<typeof createDatabaseGate>;
  handler: ReturnType<typeof createRpcHandler>;
  /** Unless AGENTD_GRPC_SERVER=connect: the server gRPC connections are routed to. */
  grpcJs: grpc.Server | undefined;
  metrics: ReturnType<typeof createServiceMetrics>;
  waiters: TaskWaiters;
}

/**
 * The grpc-js server (AGENTD_GRPC_SERVER=grpc-js, the default): the same routes, interceptors and API-key
 * check as the connect-node handler (server/grpc-js/). The per-connection stream cap is
 * HTTP/2's own SETTINGS_MAX_CONCURRENT_STREAMS here (grpc-js does not expose a call's connection).
 */
function createGrpcJsServer(
  rpc: RpcHandlerOptions,
  config: AgentServiceDeps["config"],
  beforeCall: GrpcJsAdapterOptions["beforeCall"],
): grpc.Server {
  const adapter: GrpcJsAdapterOptions = {
    routes: rpc.routes,
    interceptors: rpc.interceptors ?? [],
    ...(rpc.binaryOptions ? { readOptions: rpc.binaryOptions } : {}),
    beforeCall,
  };
  const server = new grpc.Server({
    "grpc.max_receive_message_length": config.maxRequestBytes,
    "grpc.max_concurrent_streams": config.maxStreamsPerConnection,
    // As the connect-node side's idle reaper: a connection with no call for this long gets GOAWAY.
    "grpc.max_connection_idle_ms": config.idleTimeoutMs,
    // channelz (grpc-js's introspection service) is not served here; its per-call bookkeeping is skipped.
    "grpc.enable_channelz": 0,
    // The API key is checked before a body is read, as on the connect-node path.
    interceptors: [checkBeforeBody(adapter)],
  });
  addConnectRoutes(server, adapter);
  return server;
}

/** The task side: the observed writer over the outbox (handing its events to the hub), the runner, and what the task handlers share. */
function buildTaskSide(
  deps: AgentServiceDeps,
  metrics: ReturnType<typeof createServiceMetrics>,
  outbox: ReturnType<typeof createWebhookOutbox>,
  hub: EventHub,
) {
  const { db, bus, registry, config, logger } = deps;
  const writer = observeTaskWriter(
    createTaskWriter({
      sql: db.sql,
      bus,
      sink: outbox,
      // Two inserts in flight on real Postgres (the rest of the pool stays for other work); the embedded one has one connection.
      groupCommit: {
        maxRows: config.groupCommitRows,
        maxInFlight: db.embedded ? 1 : 2,
        written: (rows) => metrics.insertBatchRows.observe(rows),
        appended: (changes) => metrics.appendBatchChanges.observe(changes),
      },
      committed: (task, events) => hub.committed(task, events),
    }),
    metrics,
  );
  const runner = createTaskRunner({
    writer,
    registry,
    bus,
    logger: logger.child({ component: "runner" }),
    findTask: (key) => findTask(db.sql, key),
    failovers: (listener) => db.onPrimaryMoved(listener),
    options: {
      owner: `${hostname()}/${process.pid}/${newId()}`,
      concurrency: config.runnerConcurrency,
      leaseMs: config.leaseMs,
      heartbeatMs: config.heartbeatMs,
      pollMs: config.pollMs,
      retryBackoffMs: config.retryBackoffMs,
      deltaWindowMs: DELTA_WINDOW_MS,
    },
  });
  // Webhook URLs are checked at registration with the same SSRF guard the notifier applies at send.
  const urlPolicy = {
    allowHttp: config.webhookAllowHttp,
    guard: createAddressGuard({ allowCidrs: config.webhookAllowCidrs }),
  };
  const taskDeps: TaskDeps = {
    sql: db.sql,
    writer,
    bus,
    registry,
    executor: runner,
    logger,
    limits: { leaseMs: config.leaseMs },
    waiters: createTaskWaiters({ sql: db.sql, bus, logger, pollMs: config.pollMs }),
    runs: new RunSlots(config.maxConcurrentRuns),
    checkWebhook: createTaskWebhookCheck({ sql: db.sql, policy: urlPolicy }),
  };
  return { writer, runner, taskDeps, urlPolicy };
}

/** The RPC handler's options: interceptors, the plain-HTTP fallback, and every service's routes. */
function rpcOptions(
  deps: AgentServiceDeps,
  parts: {
    auth: ReturnType<typeof createAuthenticator>;
    tokens: ReturnType<typeof createAccessTokens>;
    streaming: ReturnType<typeof createStreaming>;
    metrics: ReturnType<typeof createServiceMetrics>;
    outbox: ReturnType<typeof createWebhookOutbox>;
    taskDeps: TaskDeps;
    urlPolicy: ReturnType<typeof buildTaskSide>["urlPolicy"];
    health: ReturnType<typeof createHealthService>;
    probes: ReturnType<typeof createHttpProbes>;
    gate: ReturnType<typeof createDatabaseGate>;
  },
): RpcHandlerOptions {
  const { db, bus, config, logger } = deps;
  const { auth, tokens, streaming, metrics, outbox, taskDeps, urlPolicy, health, probes, gate } = parts;
  const limits = { maxInputDepth: config.maxInputDepth };
  const apiDocs = createApiDocs(); // GET /openapi.json and /docs
  // The web console at GET / (web/console, built into dist/console).
  const consoleSite = createConsoleSite();
  return {
    readMaxBytes: config.maxRequestBytes,
    onHandlerError: (err, rpc) => logger.debug({ err, rpc }, "response could not be written (client gone)"),
    // A binary Value nests 2 messages per JSON level: input up to twice the depth limit gets the
    // limit's own INVALID_ARGUMENT; deeper input is refused by the decoder (also INVALID_ARGUMENT).
    binaryOptions: { recursionLimit: Math.min(4 * config.maxInputDepth + 32, 2_000) },
    interceptors: [
      rpcObserver({ metrics, logger, level: config.accessLogLevel }),
      edgeInterceptor(logger),
      // Each database statement of a call answers within AGENTD_DB_STATEMENT_TIMEOUT_MS, or the call is UNAVAILABLE.
      (next) => (req) => withStatementDeadline(config.dbStatementTimeoutMs, () => next(req)),
      gate.interceptor,
      authInterceptor(auth),
      inputInterceptor(limits),
      tokenLimitsInterceptor(),
    ],
    // A request without a valid API key is refused before its body is read.
    beforeBody: authenticateBeforeBody(auth, config.dbStatementTimeoutMs),
    // Each RPC knows its connection, for the per-connection stream cap.
    contextValues: connectionContext,
    fallback: (req, res) => {
      if (probes.handle(req, res)) return;
      // With AGENTD_METRICS_PORT, /metrics is served there only.
      if (config.metricsPort > 0 && isMetricsRequest(req)) {
        res.writeHead(404);
        res.end();
        return;
      }
      if (streaming.handleHttp(req, res)) return;
      if (apiDocs.handleHttp(req, res)) return;
      if (consoleSite.handle(req, res)) return;
      res.writeHead(404);
      res.end();
    },
    routes: (router) => {
      agentServiceRoutes(taskDeps, limits, streaming)(router);
      taskServiceRoutes(taskDeps, limits, streaming)(router);
      webhookServiceRoutes({ sql: db.sql, bus, policy: urlPolicy, outbox })(router);
      keyServiceRoutes({ sql: db.sql })(router);
      authServiceRoutes(tokens)(router);
      health.routes(router);
      createReflectionRoutes([
        file_agentd_v1_agent_service,
        file_agentd_v1_task_service,
        file_agentd_v1_webhook_service,
        file_agentd_v1_key_service,
        file_agentd_v1_auth_service,
        file_grpc_health_v1_health,
      ])(router);
    },
  };
}

/** Listens (TLS, the metrics port, the one port), starts the work now or once the database is ready, and returns the running service. */
async function startService(
  deps: AgentServiceDeps,
  parts: Assembly,
  opts: { databaseReady?: Promise<void> },
): Promise<RunningAgentService> {
  const { db, config, logger } = deps;
  const { streaming, writer, runner, health, probes, gate, handler, grpcJs, waiters } = parts;
  for (const service of [
    "agentd.v1.AgentService",
    "agentd.v1.TaskService",
    "agentd.v1.WebhookService",
    "agentd.v1.KeyService",
    "agentd.v1.AuthService",
  ]) {
    health.setStatus(service, "SERVING");
  }
  // Certificate problems stop start-up here, before anything listens.
  const tls =
    config.tlsCert && config.tlsKey
      ? await createTlsTerminator({ certFile: config.tlsCert, keyFile: config.tlsKey }, { logger })
      : undefined;
  const metrics =
    config.metricsPort > 0
      ? await listenMetrics({
          host: config.host,
          port: config.metricsPort,
          serve: (req, res) => streaming.handleHttp(req, res),
        })
      : undefined;
  const server = await listenOnePort({
    ...(tls ? { tls } : {}),
    // Browsers on the allowed origins (AGENTD_CORS_ORIGINS): preflights and CORS headers.
    handler: withCors(handler, config.corsOrigins),
    host: config.host,
    port: config.port,
    maxRequestBytes: config.maxRequestBytes,
    ...(grpcJs ? { grpc: (otherStreams) => createGrpcJsInjector(grpcJs, otherStreams, logger) } : {}),
    onH2Connection: (name) => parts.metrics.http2Connections.inc({ server: name }),
    timeouts: { idleMs: config.idleTimeoutMs, headersMs: config.headersTimeoutMs, requestMs: config.requestTimeoutMs },
    logger,
  }).catch(async (error: unknown) => {
    await metrics?.close();
    throw error;
  });
  let databaseHealth: ReturnType<typeof monitorDatabase> | undefined;
  let inputExpiry: ReturnType<typeof startInputExpirySweep> | undefined;
  let closing: Promise<void> | undefined;
  const startWork = () => {
    if (closing) return;
    gate.open();
    health.setDependencyDown(false);
    runner.start();
    streaming.start();
    // Embedded PGlite lives in this process: it cannot be down on its own.
    databaseHealth = db.embedded
      ? undefined
      : monitorDatabase({ health, ping: () => db.ping(), logger: logger.child({ component: "health" }) });
    inputExpiry = startInputExpirySweep({ writer, logger }, config.pollMs);
  };
  if (opts.databaseReady) {
    gate.hold();
    health.setDependencyDown(true);
    void opts.databaseReady
      .then(startWork)
      .catch((err: unknown) => logger.error({ err }, "could not start the runner once the database was ready"));
  } else startWork();
  return {
    server,
    runner,
    ...(metrics ? { metrics } : {}),
    reloadTls: async () => tls?.reload(),
    close() {
      closing ??= (async () => {
        // Not ready first (/readyz 503, grpc health NOT_SERVING), while the port still serves,
        // so that load balancers stop sending new calls before the listener closes.
        probes.shutdown();
        databaseHealth?.stop();
        health.shutdown();
        if (config.shutdownDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
        // Open streams end first (UNAVAILABLE: reconnect elsewhere), so they do not hold the grace period.
        await Promise.all([streaming.close(), inputExpiry?.stop()]);
        await Promise.all([server.close({ graceMs: config.shutdownGraceMs }), runner.stop(config.shutdownGraceMs)]);
        parts.grpcJs?.forceShutdown(); // its connections were drained with the port's
        waiters.close();
        await metrics?.close();
      })();
      return closing;
    },
  };
}
