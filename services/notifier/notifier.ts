// The notifier: claims due webhook deliveries from the outbox, signs and sends
// them, records each attempt and schedules the next. It shares nothing with
// the agent service but Postgres (DESIGN.md: processes). New deliveries arrive
// as wake-up hints on the bus topic "delivery"; a bounded poll covers lost
// hints, retries that fell due, and leases of notifiers that died.
//
// Flow and limits. A claimed delivery is *queued* until its HTTP attempt
// starts and *sending* while it runs; its outcome is then written (successes
// in batches). An attempt is counted only when it starts (one write for all
// that start together, before their requests): a notifier killed holding
// claims it never started costs them no attempt. Sending is limited globally
// (webhookConcurrency) and per destination (webhookEndpointConcurrency): the
// fairness rule. Queued plus sending is limited to twice those, so each
// destination has its next deliveries claimed and waiting the moment a request
// finishes, without a claim in between. A delivery waits at most for one attempt to
// its destination; one that waited too long for its lease is handed back
// instead of sent.
import { hostname } from "node:os";
import type { Config } from "../shared/config.js";
import type { Database } from "../shared/db/database.js";
import { toError } from "../shared/errors.js";
import { newId } from "../shared/ids.js";
import type { Logger } from "../shared/log.js";
import { createAddressGuard } from "../shared/webhooks/address-guard.js";
import { signedHeaders } from "../shared/webhooks/signing.js";
import type { WakeupBus } from "../shared/wakeup/bus.js";
import { type ClaimedDelivery, claimDeliveries } from "./claim-deliveries.js";
import { type Completion, type CompletionResult, completeDelivery, releaseDeliveries } from "./complete-delivery.js";
import { DestinationSlots } from "./destination-slots.js";
import { createNotifierMetrics, type NotifierMetrics } from "./metrics.js";
import { nextAfterAttempt, type RetryPolicy } from "./retry-schedule.js";
import { createAgents, type SendResult, sendDelivery } from "./send-delivery.js";
import { createSuccessBatcher } from "./success-batcher.js";
import { startAttempts } from "./start-attempts.js";
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

const MAX_CLAIM = 100;
const SWEEP_BATCH = 100;
const USER_AGENT = "agentd-webhooks/1";
const NO_SECRET =
  "no signing secret: create one with WebhookService.RotateWebhookSecret (empty endpoint_id for per-task webhooks)";

interface Held {
  claim: ClaimedDelivery;
  /** Still counted in `queued` (until its HTTP attempt ends). */
  queued: boolean;
  /** Local clock at claim time: how much of the lease is left. */
  claimedAt: number;
  /** Settles once the outcome is written (or given up). */
  done?: Promise<void>;
}

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
  const sending = new DestinationSlots(config.webhookConcurrency, config.webhookEndpointConcurrency);
  const queued = new DestinationSlots(2 * config.webhookConcurrency, 2 * config.webhookEndpointConcurrency);
  const policy: RetryPolicy = {
    scheduleMs: config.webhookRetryScheduleMs,
    throttleMinMs: config.webhookThrottleMinMs,
    retryAfterMaxMs: config.webhookRetryAfterMaxMs,
  };
  // Past this age a waiting claim is handed back: its attempt might outlive the lease.
  const maxWaitMs = Math.max(0, config.notifierLeaseMs - config.webhookTimeoutMs - 1000);

  const held = new Map<string, Held>();
  /** Claimed, waiting for a sending slot; oldest first. */
  let ready: Held[] = [];
  /** Deliveries handed back at shutdown: their late outcome is not written. */
  const abandoned = new Set<string>();
  let running = false;
  let claiming = false;
  let claimAgain = false;
  let claimLoop: Promise<void> = Promise.resolve();
  let pollTimer: NodeJS.Timeout | undefined;
  const wakeTimers = new Set<NodeJS.Timeout>();
  let unsubscribe: (() => void) | undefined;

  async function send(claim: ClaimedDelivery): Promise<SendResult> {
    if (claim.secrets.length === 0) return { kind: "refused", status: 0, latencyMs: 0, error: NO_SECRET, responseBody: "" };
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
        guard,
        agents,
      }),
    );
  }

  function report(claim: ClaimedDelivery, result: SendResult, outcome: CompletionResult, nextDelayMs: number | undefined): void {
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
      log.warn(fields, "webhook attempt finished after its lease was lost; outcome recorded, state left to the new claimant");
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

  /** One attempt: send, free the sending slot, write the outcome. Must not throw. */
  async function attempt(claim: ClaimedDelivery): Promise<void> {
    const time = new Date();
    let result: SendResult;
    try {
      result = await send(claim);
    } finally {
      sending.release(claim.target);
      const h = held.get(claim.delivery_id);
      if (h?.queued) {
        h.queued = false;
        queued.release(claim.target);
      }
      metrics.inFlight.set(sending.inFlight);
      // The slots are free now: the next delivery need not wait for our database write.
      pump();
    }
    if (abandoned.has(claim.delivery_id)) return;
    const next = nextAfterAttempt(result, claim.attempts, policy, { retries: claim.retries, random: random() });
    const completion: Completion = {
      delivery: claim,
      attempt: { attempt: claim.attempts, time, status: result.status, latencyMs: result.latencyMs, error: result.error, responseBody: result.responseBody },
      next,
      endpointFault: true,
      disableAfterMs: config.webhookDisableAfterMs,
    };
    let outcome: CompletionResult;
    try {
      outcome = next.state === "SUCCEEDED" ? await successes.record(completion) : await completeDelivery(sql, completion);
    } catch (error) {
      // The lease runs out and the sweep records the attempt as lost; the delivery is retried.
      log.error({ err: toError(error), deliveryId: claim.delivery_id, tenantId: claim.tenant_id }, "could not record a webhook attempt");
      return;
    }
    const delayMs = next.state === "PENDING" ? next.delayMs : undefined;
    report(claim, result, outcome, delayMs);
    if (delayMs !== undefined && delayMs < config.pollMs) wakeAfter(delayMs);
  }

  function release(h: Held): void {
    if (h.queued) queued.release(h.claim.target);
    h.queued = false;
    held.delete(h.claim.delivery_id);
  }

  /** Counts the attempts of `list` (sending slots taken) in one write, then sends those still held.
   * A claim not started (lease lost, or the write failed) is not sent; its lease runs out and the
   * sweep hands it back uncharged. */
  function begin(list: Held[]): void {
    const started = startAttempts(
      sql,
      list.map((h) => h.claim),
    ).catch((error: unknown) => {
      log.warn({ err: toError(error), count: list.length }, "could not start webhook attempts; their leases will expire");
      return new Map<string, string>();
    });
    for (const h of list) {
      h.done = started
        .then((rows) => {
          const rowId = rows.get(h.claim.delivery_id);
          if (rowId === undefined || abandoned.has(h.claim.delivery_id)) {
            sending.release(h.claim.target);
            metrics.inFlight.set(sending.inFlight);
            return;
          }
          h.claim.row_id = rowId;
          return attempt(h.claim);
        })
        .catch((error: unknown) => log.error({ err: toError(error), deliveryId: h.claim.delivery_id }, "webhook attempt crashed"))
        .finally(() => release(h));
    }
  }

  /** Starts waiting deliveries while sending slots allow, oldest first, skipping full destinations. */
  function dispatchReady(): void {
    if (!running || ready.length === 0) return;
    const stale: Held[] = [];
    const still: Held[] = [];
    const starting: Held[] = [];
    for (const h of ready) {
      if (Date.now() - h.claimedAt > maxWaitMs) stale.push(h);
      else if (sending.hasRoom(h.claim.target)) {
        sending.take(h.claim.target);
        starting.push(h);
      } else still.push(h);
    }
    ready = still;
    if (starting.length > 0) begin(starting);
    metrics.inFlight.set(sending.inFlight);
    if (stale.length > 0) {
      for (const h of stale) release(h);
      void releaseDeliveries(
        sql,
        stale.map((h) => h.claim),
      ).catch((error: unknown) => log.warn({ err: toError(error), count: stale.length }, "could not hand back stale webhook claims; their leases will expire"));
    }
  }

  /** Sends what waits, then claims while there is room to hold more and deliveries are due. One claim at
   * a time; calls during it ask for one more round, so under load each claim takes many rows. */
  function pump(): void {
    dispatchReady();
    if (!running) return;
    if (claiming) {
      claimAgain = true;
      return;
    }
    claiming = true;
    claimLoop = (async () => {
      try {
        for (;;) {
          claimAgain = false;
          const limit = Math.min(queued.free(), MAX_CLAIM);
          if (!running || limit === 0) break;
          const claims = await claimDeliveries(sql, {
            owner,
            leaseMs: config.notifierLeaseMs,
            limit,
            perTarget: queued.perTarget,
            busy: queued.busy(),
          });
          if (!running) {
            // Stopped while claiming: hand these back rather than start sending.
            await releaseDeliveries(sql, claims);
            break;
          }
          const now = Date.now();
          for (const claim of claims) {
            queued.take(claim.target);
            const h: Held = { claim, claimedAt: now, queued: true };
            held.set(claim.delivery_id, h);
            ready.push(h);
          }
          dispatchReady();
          if (claims.length < limit && !claimAgain) break;
        }
      } catch (error) {
        // The next hint or poll tries again.
        log.warn({ err: toError(error) }, "claiming webhook deliveries failed");
      } finally {
        claiming = false;
      }
    })();
  }

  function wakeAfter(ms: number): void {
    const timer = setTimeout(() => {
      wakeTimers.delete(timer);
      pump();
    }, ms + 5);
    wakeTimers.add(timer);
  }

  async function tick(): Promise<void> {
    try {
      const swept = await sweepExpiredLeases(sql, policy, { limit: SWEEP_BATCH, random });
      for (const s of swept) {
        if (!s.started) {
          log.info({ deliveryId: s.delivery_id, tenantId: s.tenant_id }, "webhook claim handed back unsent: its notifier's lease expired before the attempt started");
          continue;
        }
        metrics.attempts.inc({ outcome: "lost" });
        if (s.next.state === "FAILED") metrics.deliveries.inc({ outcome: "failed" });
        log.warn({ deliveryId: s.delivery_id, tenantId: s.tenant_id, next: s.next.state }, "webhook attempt lost: its notifier's lease expired");
      }
    } catch (error) {
      log.warn({ err: toError(error) }, "sweeping expired webhook leases failed");
    }
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
      unsubscribe = bus.subscribe("delivery", () => pump());
      void tick();
      schedulePoll();
      log.info(
        { concurrency: config.webhookConcurrency, endpointConcurrency: config.webhookEndpointConcurrency, pollMs: config.pollMs },
        "notifier started",
      );
    },

    async stop(graceMs) {
      running = false;
      unsubscribe?.();
      clearTimeout(pollTimer);
      for (const t of wakeTimers) clearTimeout(t);
      wakeTimers.clear();
      await claimLoop;
      // Claimed but not started: back at once.
      const waiting = ready;
      ready = [];
      for (const h of waiting) release(h);
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([Promise.all([...held.values()].map((h) => h.done)), graceOver]);
      clearTimeout(timer);
      const inFlight = [...held.values()].map((h) => h.claim);
      for (const claim of inFlight) abandoned.add(claim.delivery_id);
      const handBack = [...waiting.map((h) => h.claim), ...inFlight];
      if (handBack.length > 0) {
        await releaseDeliveries(sql, handBack).catch((error: unknown) => {
          log.warn({ err: toError(error), count: handBack.length }, "could not hand back webhook deliveries; their leases will expire");
        });
        log.info({ count: handBack.length }, "handed back webhook deliveries not yet sent or still in flight");
      }
      agents.http.destroy();
      agents.https.destroy();
      log.info("notifier stopped");
    },
  };
}
