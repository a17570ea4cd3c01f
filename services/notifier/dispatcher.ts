// Which claimed deliveries the notifier (notifier.ts) sends when. A claimed delivery
// is *queued* until its HTTP attempt starts and *sending* while it runs. Sending is
// limited globally (webhookConcurrency) and per destination (webhookEndpointConcurrency):
// the fairness rule. Queued plus sending is limited to twice those, so each destination
// has its next deliveries claimed and waiting the moment a request finishes, without a
// claim in between. A delivery waits at most for one attempt to its destination; one
// that waited too long for its lease is handed back instead of sent. An attempt is
// counted only when it starts (one write for all that start together, before their
// requests): a notifier killed holding claims it never started costs them no attempt.
import type { Config } from "../shared/config.js";
import type { Sql } from "../shared/db/database.js";
import { toError } from "../shared/errors.js";
import type { Logger } from "../shared/log.js";
import { type ClaimedDelivery, claimDeliveries } from "./claim-deliveries.js";
import { releaseDeliveries } from "./complete-delivery.js";
import { DestinationSlots } from "./destination-slots.js";
import type { NotifierMetrics } from "./metrics.js";
import { startAttempts } from "./start-attempts.js";

export interface DispatcherDeps {
  sql: Sql;
  /** Whose leases the claims are. */
  owner: string;
  config: Pick<Config, "webhookConcurrency" | "webhookEndpointConcurrency" | "notifierLeaseMs" | "webhookTimeoutMs">;
  log: Logger;
  metrics: NotifierMetrics;
  /** One started attempt: sends, calls `sent` once its request has ended, writes the outcome. Must not throw. */
  attempt: (claim: ClaimedDelivery) => Promise<void>;
}

const MAX_CLAIM = 100;

interface Held {
  claim: ClaimedDelivery;
  /** Still counted in `queued` (until its HTTP attempt ends). */
  queued: boolean;
  /** Local clock at claim time: how much of the lease is left. */
  claimedAt: number;
  /** Settles once the outcome is written (or given up). */
  done?: Promise<void>;
}

/** The notifier's claims, from claim to hand-back: the ready queue, the slots, and the claim loop. */
export class Dispatcher {
  private readonly sending: DestinationSlots;
  private readonly queued: DestinationSlots;
  /** Past this age a waiting claim is handed back: its attempt might outlive the lease. */
  private readonly maxWaitMs: number;
  private readonly held = new Map<string, Held>();
  /** Claimed, waiting for a sending slot; oldest first. */
  private ready: Held[] = [];
  /** Deliveries handed back at shutdown: their late outcome is not written. */
  private readonly handedBack = new Set<string>();
  private running = false;
  private claiming = false;
  private claimAgain = false;
  private claimLoop: Promise<void> = Promise.resolve();

  constructor(private readonly deps: DispatcherDeps) {
    const { config } = deps;
    this.sending = new DestinationSlots(config.webhookConcurrency, config.webhookEndpointConcurrency);
    this.queued = new DestinationSlots(2 * config.webhookConcurrency, 2 * config.webhookEndpointConcurrency);
    this.maxWaitMs = Math.max(0, config.notifierLeaseMs - config.webhookTimeoutMs - 1000);
  }

  start(): void {
    this.running = true;
  }

  /** Sends what waits, then claims while there is room to hold more and deliveries are due. One claim at
   * a time; calls during it ask for one more round, so under load each claim takes many rows. */
  pump(): void {
    this.dispatchReady();
    if (!this.running) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    this.claiming = true;
    this.claimLoop = this.claimRounds();
  }

  /** The request of `claim` has ended: its slots are free for the next delivery. */
  sent(claim: ClaimedDelivery): void {
    this.sending.release(claim.target);
    const h = this.held.get(claim.delivery_id);
    if (h?.queued) {
      h.queued = false;
      this.queued.release(claim.target);
    }
    this.deps.metrics.inFlight.set(this.sending.inFlight);
    // The slots are free now: the next delivery need not wait for our database write.
    this.pump();
  }

  /** Handed back at shutdown: its late outcome is not written. */
  abandoned(deliveryId: string): boolean {
    return this.handedBack.has(deliveryId);
  }

  /** Stops claiming, hands back what waits, lets attempts in flight finish within `graceMs`, hands the rest back. */
  async stop(graceMs: number): Promise<void> {
    const { sql, log } = this.deps;
    this.running = false;
    await this.claimLoop;
    // Claimed but not started: back at once.
    const waiting = this.ready;
    this.ready = [];
    for (const h of waiting) this.release(h);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.all([...this.held.values()].map((h) => h.done)), graceOver]);
    clearTimeout(timer);
    const inFlight = [...this.held.values()].map((h) => h.claim);
    for (const claim of inFlight) this.handedBack.add(claim.delivery_id);
    const handBack = [...waiting.map((h) => h.claim), ...inFlight];
    if (handBack.length > 0) {
      await releaseDeliveries(sql, handBack).catch((error: unknown) => {
        log.warn(
          { err: toError(error), count: handBack.length },
          "could not hand back webhook deliveries; their leases will expire",
        );
      });
      log.info({ count: handBack.length }, "handed back webhook deliveries not yet sent or still in flight");
    }
  }

  private async claimRounds(): Promise<void> {
    const { sql, config, log } = this.deps;
    try {
      for (;;) {
        this.claimAgain = false;
        const limit = Math.min(this.queued.free(), MAX_CLAIM);
        if (!this.running || limit === 0) break;
        const claims = await claimDeliveries(sql, {
          owner: this.deps.owner,
          leaseMs: config.notifierLeaseMs,
          limit,
          perTarget: this.queued.perTarget,
          busy: this.queued.busy(),
        });
        if (!this.running) {
          // Stopped while claiming: hand these back rather than start sending.
          await releaseDeliveries(sql, claims);
          break;
        }
        const now = Date.now();
        for (const claim of claims) {
          this.queued.take(claim.target);
          const h: Held = { claim, claimedAt: now, queued: true };
          this.held.set(claim.delivery_id, h);
          this.ready.push(h);
        }
        this.dispatchReady();
        if (claims.length < limit && !this.claimAgain) break;
      }
    } catch (error) {
      // The next hint or poll tries again.
      log.warn({ err: toError(error) }, "claiming webhook deliveries failed");
    } finally {
      this.claiming = false;
    }
  }

  /** Starts waiting deliveries while sending slots allow, oldest first, skipping full destinations. */
  private dispatchReady(): void {
    if (!this.running || this.ready.length === 0) return;
    const stale: Held[] = [];
    const still: Held[] = [];
    const starting: Held[] = [];
    for (const h of this.ready) {
      if (Date.now() - h.claimedAt > this.maxWaitMs) stale.push(h);
      else if (this.sending.hasRoom(h.claim.target)) {
        this.sending.take(h.claim.target);
        starting.push(h);
      } else still.push(h);
    }
    this.ready = still;
    if (starting.length > 0) this.begin(starting);
    this.deps.metrics.inFlight.set(this.sending.inFlight);
    if (stale.length > 0) {
      for (const h of stale) this.release(h);
      void releaseDeliveries(
        this.deps.sql,
        stale.map((h) => h.claim),
      ).catch((error: unknown) =>
        this.deps.log.warn(
          { err: toError(error), count: stale.length },
          "could not hand back stale webhook claims; their leases will expire",
        ),
      );
    }
  }

  /** Counts the attempts of `list` (sending slots taken) in one write, then sends those still held.
   * A claim not started (lease lost, or the write failed) is not sent; its lease runs out and the
   * sweep hands it back uncharged. */
  private begin(list: Held[]): void {
    const { sql, log, metrics } = this.deps;
    const started = startAttempts(
      sql,
      list.map((h) => h.claim),
    ).catch((error: unknown) => {
      log.warn(
        { err: toError(error), count: list.length },
        "could not start webhook attempts; their leases will expire",
      );
      return new Map<string, string>();
    });
    for (const h of list) {
      h.done = started
        .then((rows) => {
          const rowId = rows.get(h.claim.delivery_id);
          if (rowId === undefined || this.handedBack.has(h.claim.delivery_id)) {
            this.sending.release(h.claim.target);
            metrics.inFlight.set(this.sending.inFlight);
            return;
          }
          h.claim.row_id = rowId;
          return this.deps.attempt(h.claim);
        })
        .catch((error: unknown) =>
          log.error({ err: toError(error), deliveryId: h.claim.delivery_id }, "webhook attempt crashed"),
        )
        .finally(() => this.release(h));
    }
  }

  private release(h: Held): void {
    if (h.queued) this.queued.release(h.claim.target);
    h.queued = false;
    this.held.delete(h.claim.delivery_id);
  }
}
