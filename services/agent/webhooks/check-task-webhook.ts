// The registration check for a per-task webhook (CreateTaskRequest.webhook),
// beside the syntax check in handlers/request-fields.ts: https unless allowed,
// a destination the SSRF guard accepts, and a tenant signing secret to sign
// with (deliveries nobody can verify are refused up front).
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { Sql } from "../../shared/db/database.js";
import { invalidArgument, rpcError } from "../../shared/errors.js";
import { checkWebhookUrl, type UrlPolicy } from "../../shared/webhooks/url-policy.js";
import { hasTenantSecret } from "./rotate-secret.js";

export type TaskWebhookCheck = (tenantId: string, webhook: JsonObject) => Promise<void>;

export function createTaskWebhookCheck(deps: { sql: Sql; policy: UrlPolicy }): TaskWebhookCheck {
  return async (tenantId, webhook) => {
    const problem = await checkWebhookUrl(String(webhook.url), deps.policy);
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
