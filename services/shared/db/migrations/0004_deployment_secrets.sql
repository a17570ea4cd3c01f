-- Secrets every replica of one deployment shares, made once, here, when the
-- database is created: replicas agree without any configuration, and nothing
-- secret lives in settings or images. Never sent to clients or logged.
CREATE TABLE deployment_secrets (
  name       text PRIMARY KEY,
  secret     text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The key of page-token MACs (services/agent/handlers/page-token.ts): 244 random
-- bits from the server's strong random source (two version-4 UUIDs).
INSERT INTO deployment_secrets (name, secret)
VALUES ('page_token', gen_random_uuid()::text || gen_random_uuid()::text);
