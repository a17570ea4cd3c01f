-- The key that signs access tokens (services/shared/auth/access-tokens.ts): HS256
-- JWTs minted from an API key for browsers. Shared by every replica, made once
-- here like the page-token key; never sent to clients or logged. Tokens
-- themselves are not stored: they are checked by signature, expiry, and their
-- parent key still being active.
INSERT INTO deployment_secrets (name, secret)
VALUES ('access_token', gen_random_uuid()::text || gen_random_uuid()::text)
ON CONFLICT (name) DO NOTHING;
