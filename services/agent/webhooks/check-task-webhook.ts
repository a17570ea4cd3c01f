// The registration check for a per-task webhook (CreateTaskRequest.webhook),
// beside the syntax check in handlers/request-fields.ts, which parsed the URL:
// https unless allowed, a destination the SSRF guard accepts, and a tenant
// signing secret to sign with (deliveries nobody can verify are refused up front).
import { Code } from "@connectrpc/connect";
import type { Sql } from "../../shared/db/database.js";
import { invalidArgument, rpcError } from "../../shared/errors.js";
import { checkWebhookUrl, type UrlPolicy } from "../../shared/webhooks/url-policy.js";

/** `text` is the URL as sent, `url` its parse. */
export type TaskWebhookCheck = (tenantId: string, text: string, url: URL) => Promise<void>;

export function createTaskWebhookCheck(deps: { sql: Sql; policy: UrlPolicy }): TaskWebhookCheck {
  return async (tenantId, text, url) => {
    const problem = await checkWebhookUrl(text, url, deps.policy);
    if (problem) throw invalidArgument([{ field: "webhook.url", ...problem }], problem.reason);
    if (!(await hasTenantSecret(deps.sql, tenantId))) {
      throw rpcError(
        Code.FailedPrecondition,
        "NO_SIGNING_SECRET",
        "per-task webhooks are signed with the tenant's signing secret, and there is none yet: create it with WebhookService.RotateWebhookSecret (empty endpoint_id)",
      );
    }
  };
}

/** Whether the tenant has a secret for per-task webhooks (they cannot be signed without one). */
async function hasTenantSecret(sql: Sql, tenantId: string): Promise<boolean> {
  const rows = await sql`
    SELECT 1 FROM webhook_secrets
    WHERE tenant_id = ${tenantId} AND endpoint_id IS NULL AND (expire_time IS NULL OR expire_time > now())
    LIMIT 1
  `;
  return rows.length > 0;
}
