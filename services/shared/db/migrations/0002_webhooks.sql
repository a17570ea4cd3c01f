-- Webhooks: endpoints, signing secrets, the delivery outbox and its attempts.
-- As everywhere, tenant_id is on every row and first in every key.

-- Time-sortable ids (UUIDv7 layout: 48-bit Unix milliseconds, then random) made
-- inside the outbox statement, so enqueueing is one round trip whatever the
-- number of subscribed endpoints.
CREATE FUNCTION agentd_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;

-- A URL that receives the tenant's task events.
CREATE TABLE webhook_endpoints (
  tenant_id       text NOT NULL,
  endpoint_id     uuid NOT NULL,
  url             text NOT NULL,
  -- scheme://host:port of url: the unit of per-destination concurrency.
  target          text NOT NULL,
  event_types     text[] NOT NULL,
  description     text NOT NULL DEFAULT '',
  enabled         boolean NOT NULL DEFAULT true,
  -- Set when the server disabled the endpoint (410 Gone, failing for days).
  disabled_reason text NOT NULL DEFAULT '',
  -- First failed attempt since the last success; NULL while healthy.
  failing_since   timestamptz,
  create_time     timestamptz NOT NULL DEFAULT now(),
  update_time     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, endpoint_id)
);

-- Signing secrets, stored as given (whsec_…): HMAC needs the secret itself, so
-- a hash would not do. Shown to the caller once, never returned again.
-- endpoint_id NULL is the tenant's secret for per-task webhooks. A rotated-out
-- secret keeps signing until expire_time; NULL is the current one.
CREATE TABLE webhook_secrets (
  tenant_id   text NOT NULL,
  secret_id   uuid NOT NULL,
  endpoint_id uuid,
  secret      text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  expire_time timestamptz,
  PRIMARY KEY (tenant_id, secret_id)
);
CREATE INDEX webhook_secrets_by_owner ON webhook_secrets (tenant_id, endpoint_id);

-- The outbox: one event for one URL, written in the task change's transaction.
-- delivery_id is the webhook-id header, the same on every attempt.
CREATE TABLE webhook_deliveries (
  tenant_id        text NOT NULL,
  delivery_id      uuid NOT NULL,
  endpoint_id      uuid,              -- NULL: a per-task webhook
  task_id          uuid NOT NULL,
  sequence         bigint NOT NULL,
  event_type       text NOT NULL,
  url              text NOT NULL,
  target           text NOT NULL,
  -- The body, computed once at enqueue: {type, timestamp, data: {task, sequence}}.
  payload          jsonb NOT NULL,
  state            text NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING','SENDING','SUCCEEDED','FAILED')),
  -- Attempts made so far; the claim counts the attempt it starts.
  attempts         integer NOT NULL DEFAULT 0,
  -- false after RetryWebhookDelivery of a finished delivery: one attempt, no schedule.
  retries          boolean NOT NULL DEFAULT true,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  -- Lease of the notifier sending the current attempt; lease_id fences its writes.
  lease_owner      text,
  lease_id         uuid,
  lease_expires_at timestamptz,
  create_time      timestamptz NOT NULL DEFAULT now(),
  update_time      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, delivery_id)
);
-- The notifiers' queue and the sweeper's view of leases.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'PENDING';
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (lease_expires_at) WHERE state = 'SENDING';
-- ListWebhookDeliveries by endpoint and by task, newest first.
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (tenant_id, endpoint_id, delivery_id);
CREATE INDEX webhook_deliveries_by_task ON webhook_deliveries (tenant_id, task_id, delivery_id);

-- Every attempt of a delivery, for ListWebhookDeliveries and for debugging receivers.
CREATE TABLE webhook_attempts (
  tenant_id     text NOT NULL,
  delivery_id   uuid NOT NULL,
  attempt       integer NOT NULL,
  time          timestamptz NOT NULL,
  status_code   integer NOT NULL DEFAULT 0,
  latency_ms    integer NOT NULL DEFAULT 0,
  error         text NOT NULL DEFAULT '',
  -- The first 1 KiB of the answer.
  response_body text NOT NULL DEFAULT '',
  PRIMARY KEY (tenant_id, delivery_id, attempt)
);
