// Standard Webhooks signing (https://www.standardwebhooks.com): secrets are
// `whsec_` + base64 of 32 random bytes; `webhook-signature` carries one
// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per active secret, so a
// receiver holding either the old or the new secret verifies during rotation.
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";

const SECRET_PREFIX = "whsec_";

export function newSigningSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString("base64")}`;
}

// Decoding a secret is cheap but not free; the same few secrets sign every attempt.
const signers = new Map<string, Webhook>();

function signer(secret: string): Webhook {
  let webhook = signers.get(secret);
  if (!webhook) {
    if (signers.size >= 10_000) signers.clear();
    webhook = new Webhook(secret);
    signers.set(secret, webhook);
  }
  return webhook;
}

/** The three Standard Webhooks headers for one attempt. `secrets` must not be empty. */
export function signedHeaders(
  secrets: readonly string[],
  id: string,
  timestamp: Date,
  body: string,
): { "webhook-id": string; "webhook-timestamp": string; "webhook-signature": string } {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
    "webhook-signature": secrets.map((s) => signer(s).sign(id, timestamp, body)).join(" "),
  };
}
