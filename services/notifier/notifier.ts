// The notifier: claims due webhook deliveries from the outbox, signs and sends
// them, records each attempt and schedules the next. It shares nothing with
// the agent service but Postgres (DESIGN.md: processes). New deliveries arrive
// as wake-up hints on the bus topic "delivery"; a bounded poll covers lost
// hints, retries that fell due, and leases of notifiers that died.
//
// Which claims start when, within the global and per-destination limits, is the
// dispatcher's (dispatcher.ts). Here: one attempt (send, write its outcome,
// successes in batches, report), the poll and sweep, and start and stop.
import { hostname } from "node:os";
import type { Config } from "../shared/config.js";
import type { Database, Sql } from "../shared/db/database.js";
import { toError } from "../shared/errors.js";
import { newId } from "../shared/ids.js";
import type { Logger } from "../shared/log.js";
import type { WakeupBus } from "../shared/wakeup/bus.js";
import { type AddressGuard, createAddressGuard } from "../shared/webhooks/address-guard.js";
import { signedHeaders } from "../shared/webhooks/signing.js";
import type { ClaimedDelivery } from "./claim-deliveries.js";
import { type Completion, type CompletionResult, completeDelivery } from "./complete-delivery.js";
import { Dispatcher } from "./dispatcher.js";
import { createNotifierMetrics, type NotifierMetrics } from "./metrics.js";
import { nextAfterAttempt, type RetryPolicy } from "./retry-schedule.js";
import { createAgents, type SendResult, sendDelivery } from "./send-delivery.js";
import { createSuccessBatcher } from "./success-batcher.js";
import { sweepExpiredLeases } from "./sweep-leases.js";
import { webhookAttemptSpan } from "./trace-attempt.js";

export interface NotifierDeps {
  db: Database;
  bus: WakeupBus;
  config: Config;
  logger: Logger;
  metrics?: NotifierMetrics;
  /** Source of jitter; tests may pin it. */
  random?: () => number;
}

export interface Notifier {
  readonly owner: string;
  readonly metrics: NotifierMetrics;
  start(): void;
  /** Stops claiming, lets attempts in flight finish within `graceMs`, hands the rest back. */
  stop(graceMs: number): Promise<void>;
}

const SWEEP_BATCH = 100;
const USER_AGENT = "agentd-webhooks/1";
const NO_SECRET =
  "no signing secret: create one with WebhookService.RotateWebhookSecret (empty endpoint_id for per-task webhooks)";

export function createNotifier(deps: NotifierDeps): Notifier {
  const { db, bus, config } = deps;
  const sql = db.sql;
  const owner = `${hostname()}/${process.pid}/${newId()}`;
  const log = deps.logger.child({ component: "notifier", owner });
  const metrics = deps.metrics ?? createNotifierMetrics();
  const random = deps.random ?? Math.random;
  const guard = createAddressGuard({ allowCidrs: config.webhookAllowCidrs });
  const agents = createAgents(config.webhookEndpointConcurrency);
  const successes = createSuccessBatcher(sql);
  const policy: RetryPolicy = {
    scheduleMs: config.webhookRetryScheduleMs,
    throttleMinMs: config.webhookThrottleMinMs,
    retryAfterMaxMs: config.webhookRetryAfterMaxMs,
  };
  const dispatcher = new Dispatcher({ sql, owner, config, log, metrics, attempt });
  const pump = () => dispatcher.pump();
  let running = false;
  let pollTimer: NodeJS.Timeout | undefined;
  const wakeTimers = new Set<NodeJS.Timeout>();
  let unsubscribe: (() => void) | undefined;

  /** One attempt: send, free the sending slot, write the outcome. Must not throw. */
  async function attempt(claim: ClaimedDelivery): Promise<void> {
    const time = new Date();
    let result: SendResult;
    try {
      result = await send(claim, { config, guard, agents });
    } finally {
      dispatcher.sent(claim);
    }
    if (dispatcher.abandoned(claim.delivery_id)) return;
    const next = nextAfterAttempt(result, claim.attempts, policy, { retries: claim.retries, random: random() });
    const completion: Completion = {
      delivery: claim,
      attempt: {
        attempt: claim.attempts,
        time,
        status: result.status,
        latencyMs: result.latencyMs,
        error: result.error,
        responseBody: result.responseBody,
      },
      next,
      endpointFault: true,
      disableAfterMs: config.webhookDisableAfterMs,
    };
    let outcome: CompletionResult;
    try {
      outcome =
        next.state === "SUCCEEDED" ? await successes.record(completion) : await completeDelivery(sql, completion);
    } catch (error) {
      // The lease runs out and the sweep records the attempt as lost; the delivery is retried.
      log.error(
        { err: toError(error), deliveryId: claim.delivery_id, tenantId: claim.tenant_id },
        "could not record a webhook attempt",
      );
      return;
    }
    const delayMs = next.state === "PENDING" ? next.delayMs : undefined;
    report({ log, metrics }, claim, result, outcome, delayMs);
    if (delayMs !== undefined && delayMs < config.pollMs) wakeAfter(delayMs);
  }

  function wakeAfter(ms: number): void {
    const timer = setTimeout(() => {
      wakeTimers.delete(timer);
      pump();
    }, ms + 5);
    wakeTimers.add(timer);
  }

  async function tick(): Promise<void> {
    await sweepLostAttempts(sql, policy, random, { log, metrics });
    pump();
  }

  function schedulePoll(): void {
    pollTimer = setTimeout(() => {
      void tick().finally(() => {
        if (running) schedulePoll();
      });
    }, config.pollMs);
  }

  return {
    owner,
    metrics,
    start() {
      if (running) return;
      running = true;
      dispatcher.start();
      unsubscribe = bus.subscribe("delivery", () => pump());
      void tick();
      schedulePoll();
      log.info(
        {
          concurrency: config.webhookConcurrency,
          endpointConcurrency: config.webhookEndpointConcurrency,
          pollMs: config.pollMs,
        },
        "notifier started",
      );
    },

    async stop(graceMs) {
      running = false;
      unsubscribe?.();
      clearTimeout(pollTimer);
      for (const t of wakeTimers) clearTimeout(t);
      wakeTimers.clear();
      await dispatcher.stop(graceMs);
      agents.http.destroy();
      agents.https.destroy();
      log.info("notifier stopped");
    },
  };
}

/** Hands back claims whose notifier died before sending, and records attempts lost mid-send. Must not throw. */
async function sweepLostAttempts(
  sql: Sql,
  policy: RetryPolicy,
  random: () => number,
  { log, metrics }: { log: Logger; metrics: NotifierMetrics },
): Promise<void> {
  try {
    const swept = await sweepExpiredLeases(sql, policy, { limit: SWEEP_BATCH, random });
    for (const s of swept) {
      if (!s.started) {
        log.info(
          { deliveryId: s.delivery_id, tenantId: s.tenant_id },
          "webhook claim handed back unsent: its notifier's lease expired before the attempt started",
        );
        continue;
      }
      metrics.attempts.inc({ outcome: "lost" });
      if (s.next.state === "FAILED") metrics.deliveries.inc({ outcome: "failed" });
      log.warn(
        { deliveryId: s.delivery_id, tenantId: s.tenant_id, next: s.next.state },
        "webhook attempt lost: its notifier's lease expired",
      );
    }
  } catch (error) {
    log.warn({ err: toError(error) }, "sweeping expired webhook leases failed");
  }
}

/** Signs and sends one delivery. */
async function send(
  claim: ClaimedDelivery,
  via: { config: Config; guard: AddressGuard; agents: ReturnType<typeof createAgents> },
): Promise<SendResult> {
  const { config } = via;
  if (claim.secrets.length === 0)
    return { kind: "refused", status: 0, latencyMs: 0, error: NO_SECRET, responseBody: "" };
  const body = JSON.stringify(claim.payload);
  // One CLIENT span per attempt in the task's trace; the receiver gets its traceparent.
  return webhookAttemptSpan(claim, (traceHeaders) =>
    sendDelivery({
      url: claim.url,
      headers: {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        ...traceHeaders,
        ...signedHeaders(claim.secrets, claim.delivery_id, new Date(), body),
      },
      body,
      timeoutMs: config.webhookTimeoutMs,
      allowHttp: config.webhookAllowHttp,
      guard: via.guard,
      agents: via.agents,
    }),
  );
}

/** The attempt's metrics and log line. */
function report(
  to: { log: Logger; metrics: NotifierMetrics },
  claim: ClaimedDelivery,
  result: SendResult,
  outcome: CompletionResult,
  nextDelayMs: number | undefined,
): void {
  const { log, metrics } = to;
  const fields = {
    deliveryId: claim.delivery_id,
    tenantId: claim.tenant_id,
    endpointId: claim.endpoint_id ?? undefined,
    taskId: claim.task_id,
    eventType: claim.event_type,
    attempt: claim.attempts,
    // The origin only: URL paths and queries may carry receivers' tokens.
    target: claim.target,
    status: result.status,
    latencyMs: result.latencyMs,
    outcome: result.kind,
    ...(result.error ? { error: result.error } : {}),
  };
  metrics.attempts.inc({ outcome: result.kind });
  metrics.attemptSeconds.observe({ outcome: result.kind }, result.latencyMs / 1000);
  if (outcome.status === "fenced") {
    log.warn(
      fields,
      "webhook attempt finished after its lease was lost; outcome recorded, state left to the new claimant",
    );
    return;
  }
  if (outcome.state === "SUCCEEDED") {
    metrics.deliveries.inc({ outcome: "succeeded" });
    metrics.deliveryLagSeconds.observe((Date.now() - claim.create_time.getTime()) / 1000);
    log.info(fields, "webhook delivered");
  } else if (outcome.state === "PENDING") {
    log.warn({ ...fields, retryInMs: nextDelayMs }, "webhook attempt failed; will retry");
  } else {
    metrics.deliveries.inc({ outcome: "failed" });
    log.warn(fields, "webhook delivery failed: no more attempts (dead letter)");
  }
  if (outcome.endpointDisabled) {
    metrics.endpointsDisabled.inc({ reason: result.status === 410 ? "gone" : "failing" });
    log.warn({ ...fields, reason: outcome.endpointDisabled }, "webhook endpoint disabled");
  }
}
