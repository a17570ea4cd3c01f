// The transactional outbox (DESIGN.md rule 1): the task writer hands every
// appended event to this sink inside its transaction; matching deliveries are
// written there, so a committed event always has its deliveries and a rolled
// back one never does. After commit the notifiers get a wake-up hint.
//
// `wants` must be cheap and synchronous: it decides whether the writer opens a
// transaction at all. It knows the per-task webhook from the row, and the
// tenant's endpoint subscriptions from a short-lived cache that `append`
// refreshes. A stale "no subscriber" answer is the one way an event could be
// missed, so the cache lives `cacheMs` (default 1 s) and this process's
// WebhookService calls `invalidate` on every endpoint change; another replica
// sees an endpoint change within `cacheMs`. Refreshes are single-flight per
// tenant, and with `sql` a busy tenant's entry is refreshed in the background
// in the second half of its life, so under steady load it never expires and
// writes are not sent down the transaction path just to learn "no endpoints".
import type { Sql, Tx } from "../../shared/db/database.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import type { StoredEvent, TaskEventSink } from "../model/change.js";
import type { TaskRow } from "../model/task.js";
import { taskJson } from "../wire/task-json.js";
import { enqueueDeliveries, type OutboxEvent, subscribedTypes } from "./enqueue-deliveries.js";
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  targetOf,
  type WebhookEventType,
  webhookPayload,
  webhookTypeOf,
} from "./event-types.js";

export interface WebhookOutbox extends TaskEventSink {
  /** Forget what is cached about a tenant's endpoints (after a change to them). */
  invalidate(tenantId: string): void;
}

/** `quietClaimWhere`: its claim's task.running event has no subscriber, read in the claim's own
 * snapshot, not from the cache. A task with any webhook of its own is left to the transaction,
 * where `wants` and `append` decide. */
const QUIET_CLAIM_WHERE = `(t.webhook IS NULL OR jsonb_typeof(t.webhook) = 'null')
  AND NOT EXISTS (SELECT 1 FROM webhook_endpoints e
    WHERE e.tenant_id = t.tenant_id AND e.enabled AND 'task.running' = ANY (e.event_types))`;

interface Subscriptions {
  types: Set<string>;
  until: number;
}

function taskWebhookOf(task: TaskRow): { url: string; eventTypes: string[] } | null {
  const hook = task.webhook;
  if (!hook || typeof hook.url !== "string" || !Array.isArray(hook.eventTypes)) return null;
  return { url: hook.url, eventTypes: hook.eventTypes.map(String) };
}

export function createWebhookOutbox(deps: {
  bus: WakeupBus;
  /** For background refreshes of a busy tenant's subscriptions (optional). */
  sql?: Sql;
  cacheMs?: number;
  now?: () => number;
  /** Bound of a delivery body (AGENTD_WEBHOOK_MAX_PAYLOAD_BYTES); see `webhookPayload`. */
  maxPayloadBytes?: number;
}): WebhookOutbox {
  const cacheMs = deps.cacheMs ?? 1000;
  const maxPayloadBytes = deps.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const now = deps.now ?? Date.now;
  const cache = new Map<string, Subscriptions>();
  /** Lookups in flight per tenant: `inTx` ones (started inside a writing transaction, which other
   * transactions may share), `ahead` ones (background, on the pool: never awaited inside a transaction,
   * since the pool may have no connection to spare while transactions hold them all). */
  const inTx = new Map<string, Promise<Subscriptions>>();
  const ahead = new Map<string, Promise<Subscriptions>>();

  function lookup(q: Sql | Tx, tenantId: string, flights: Map<string, Promise<Subscriptions>>): Promise<Subscriptions> {
    const started = now();
    const pending: Promise<Subscriptions> = subscribedTypes(q, tenantId)
      .then((types) => {
        const entry = { types, until: started + cacheMs };
        // `invalidate` drops the flight: a lookup started before an endpoint change must not answer for after it.
        if (flights.get(tenantId) === pending) {
          if (cache.size > 10_000) cache.clear();
          cache.set(tenantId, entry);
        }
        return entry;
      })
      .finally(() => {
        if (flights.get(tenantId) === pending) flights.delete(tenantId);
      });
    flights.set(tenantId, pending);
    return pending;
  }

  /** One lookup at a time, however many writing transactions need it; if another's fails, our own. */
  async function refresh(tx: Tx, tenantId: string): Promise<Subscriptions> {
    const shared = inTx.get(tenantId);
    if (!shared) return lookup(tx, tenantId, inTx);
    return shared.catch(() => subscribedTypes(tx, tenantId).then((types) => ({ types, until: 0 })));
  }

  /** Starts a background refresh once an entry is past half its life (or gone). */
  function refreshAhead(tenantId: string, known: Subscriptions | undefined): void {
    if (!deps.sql || ahead.has(tenantId) || inTx.has(tenantId)) return;
    if (known && known.until - now() > cacheMs / 2) return;
    lookup(deps.sql, tenantId, ahead).catch(() => {}); // a failed refresh leaves "unknown", which counts as yes
  }

  const typed = (events: readonly StoredEvent[]) =>
    events.flatMap((e) => {
      const type = webhookTypeOf(e);
      return type ? [{ event: e, type }] : [];
    });

  /** Whether any of `types` may have a subscriber; unknown counts as yes. */
  function mayHaveSubscriber(task: TaskRow, types: WebhookEventType[]): boolean {
    if (types.length === 0) return false;
    const hook = taskWebhookOf(task);
    if (hook && types.some((t) => hook.eventTypes.includes(t))) return true;
    const known = cache.get(task.tenant_id);
    refreshAhead(task.tenant_id, known);
    if (!known || known.until < now()) return true;
    return types.some((t) => known.types.has(t));
  }

  return {
    quietClaimWhere: QUIET_CLAIM_WHERE,

    wants(task, events) {
      return mayHaveSubscriber(
        task,
        typed(events).map((x) => x.type),
      );
    },

    async append(tx: Tx, task, events) {
      const matching = typed(events);
      if (matching.length === 0) return;
      let known = cache.get(task.tenant_id);
      if (!known || known.until < now()) known = await refresh(tx, task.tenant_id);
      const hook = taskWebhookOf(task);
      const hookTypes = hook ? matching.map((m) => m.type).filter((t) => hook.eventTypes.includes(t)) : [];
      // Nothing to write (no endpoint subscribes, no own webhook wants these): skip the statement.
      if (hookTypes.length === 0 && !matching.some((m) => known.types.has(m.type))) return;
      const outbox: OutboxEvent[] = matching.map(({ event, type }) => {
        // The whole task as it is after this change, not the event's snapshot, which leaves large
        // fields to other events. (A state_change is its change's last event, so this is its state;
        // only an insert's first QUEUED event, which no webhook carries, is older than `task`.)
        const current = event.kind !== "stateChange" || event.data.state === `TASK_STATE_${task.state}`;
        const snapshot = current ? taskJson({ ...task, last_sequence: event.sequence }) : event.data.task;
        return {
          sequence: event.sequence,
          type,
          payload: webhookPayload(type, event.time, snapshot, event.sequence, maxPayloadBytes),
        };
      });
      await enqueueDeliveries(
        tx,
        task.tenant_id,
        task.task_id,
        outbox,
        hook && hookTypes.length > 0 ? { url: hook.url, target: targetOf(hook.url), types: hookTypes } : null,
      );
    },

    afterCommit(task, events) {
      if (
        mayHaveSubscriber(
          task,
          typed(events).map((x) => x.type),
        )
      )
        deps.bus.publish("delivery", task.task_id);
    },

    invalidate(tenantId) {
      cache.delete(tenantId);
      inTx.delete(tenantId);
      ahead.delete(tenantId);
    },
  };
}
