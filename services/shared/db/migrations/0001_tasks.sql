-- Tenants, API keys, tasks and their event logs. Every table carries tenant_id
-- and every key starts with it, so a tenant-sharded Postgres (Citus, distribution
-- column tenant_id) can take the tables without changing the code.

CREATE TABLE tenants (
  tenant_id   text PRIMARY KEY,
  create_time timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is stored; the key itself is shown once at creation.
CREATE TABLE api_keys (
  tenant_id   text NOT NULL REFERENCES tenants (tenant_id),
  key_id      uuid NOT NULL,
  key_hash    text NOT NULL,
  key_prefix  text NOT NULL,
  name        text NOT NULL DEFAULT '',
  scopes      text[] NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  revoke_time timestamptz,
  PRIMARY KEY (tenant_id, key_id)
);
-- Authentication looks a key up by its hash before the tenant is known.
CREATE UNIQUE INDEX api_keys_by_hash ON api_keys (key_hash);

-- The projection of each task's event log. Written only by the task writer
-- (DESIGN.md rule 1).
CREATE TABLE tasks (
  tenant_id           text NOT NULL,
  task_id             uuid NOT NULL,
  agent               text NOT NULL,
  agent_version       text NOT NULL,
  state               text NOT NULL CHECK (state IN ('QUEUED','RUNNING','INPUT_REQUIRED','SUCCEEDED','FAILED','CANCELED')),
  input               jsonb,
  output              jsonb,
  error               jsonb,
  progress            jsonb,
  input_request       jsonb,
  labels              jsonb NOT NULL DEFAULT '{}',
  artifacts           jsonb NOT NULL DEFAULT '[]',
  webhook             jsonb,
  request_id          text,
  -- Hash of the creating request, so a reused request_id with another request
  -- is ALREADY_EXISTS rather than a silent match.
  request_fingerprint text,
  attempt             integer NOT NULL DEFAULT 0,
  max_attempts        integer NOT NULL,
  timeout_ms          bigint NOT NULL,
  last_sequence       bigint NOT NULL DEFAULT 0,
  create_time         timestamptz NOT NULL DEFAULT now(),
  start_time          timestamptz,
  end_time            timestamptz,
  update_time         timestamptz NOT NULL DEFAULT now(),
  -- Queue: a QUEUED task may be claimed once run_after has passed.
  run_after           timestamptz NOT NULL DEFAULT now(),
  -- Lease: who runs the current attempt, until when, and a per-claim token
  -- that fences every write of that runner.
  lease_owner         text,
  lease_id            uuid,
  lease_expires_at    timestamptz,
  -- Agent state saved with checkpoint(), and an answer waiting to resume it.
  checkpoint          jsonb,
  pending_input       jsonb,
  PRIMARY KEY (tenant_id, task_id)
);
CREATE UNIQUE INDEX tasks_by_request_id ON tasks (tenant_id, request_id) WHERE request_id IS NOT NULL;
-- Newest first listing; task ids are UUIDv7, so id order is creation order.
CREATE INDEX tasks_by_tenant_newest ON tasks (tenant_id, task_id DESC);
-- The runners' queue and the sweeper's view of leases.
CREATE INDEX tasks_queued ON tasks (run_after) WHERE state = 'QUEUED';
CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE lease_owner IS NOT NULL;

-- The append-only event log: sequence 1, 2, 3 … per task, without gaps.
CREATE TABLE task_events (
  tenant_id text NOT NULL,
  task_id   uuid NOT NULL,
  sequence  bigint NOT NULL,
  time      timestamptz NOT NULL DEFAULT now(),
  kind      text NOT NULL,
  data      jsonb NOT NULL,
  PRIMARY KEY (tenant_id, task_id, sequence)
);
