// WebhookService at the edge: parse the request (webhook-fields.ts), call one
// use case (endpoints/), map the result. Deliveries themselves are made by the
// notifier service.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { DeleteWebhookEndpointResponseSchema, WebhookService } from "../../../gen/agentd/v1/webhook_service_pb.js";
import { isId } from "../../shared/ids.js";
import type { UrlPolicy } from "../../shared/webhooks/url-policy.js";
import { createEndpoint } from "../endpoints/create-endpoint.js";
import { deleteEndpoint } from "../endpoints/delete-endpoint.js";
import type { EndpointDeps } from "../endpoints/deps.js";
import { listDeliveries } from "../endpoints/list-deliveries.js";
import { retryDelivery } from "../endpoints/retry-delivery.js";
import { rotateSecret } from "../endpoints/rotate-secret.js";
import { updateEndpoint } from "../endpoints/update-endpoint.js";
import { listEndpoints } from "../webhooks/list-endpoints.js";
import { toDelivery, toEndpoint } from "../webhooks/records.js";
import { principalOf } from "./interceptors.js";
import { createPageTokens, databasePageTokenKey } from "./page-token.js";
import { parseIdField, parseOptionalIdField, parsePageSize } from "./request-fields.js";
import { parseDeliveryFilter, parseEndpointUpdate, parseGracePeriod, parseNewEndpoint } from "./webhook-fields.js";

export interface WebhookServiceDeps extends EndpointDeps {
  /** Which webhook URLs may be registered (the SSRF guard). */
  policy: UrlPolicy;
}

export function webhookServiceRoutes(deps: WebhookServiceDeps) {
  const tenantOf = (ctx: HandlerContext) => principalOf(ctx).tenantId;
  const pageTokens = createPageTokens(databasePageTokenKey(deps.sql));

  return (router: ConnectRouter) =>
    router.service(WebhookService, {
      async createWebhookEndpoint(req, ctx) {
        const { endpoint, secret } = await createEndpoint(
          deps,
          tenantOf(ctx),
          await parseNewEndpoint(req, deps.policy),
        );
        return { endpoint: toEndpoint(endpoint), signingSecret: secret };
      },

      async listWebhookEndpoints(req, ctx) {
        const tenantId = tenantOf(ctx);
        const pageSize = parsePageSize(req.pageSize, { default: 50, max: 1000 });
        const query = { tenantId, list: "endpoints" };
        const afterId = await pageTokens.decode(req.pageToken, query, isId);
        const rows = await listEndpoints(deps.sql, tenantId, { afterId, limit: pageSize + 1 });
        const page = rows.slice(0, pageSize);
        const last = page.at(-1);
        return {
          endpoints: page.map(toEndpoint),
          nextPageToken: rows.length > pageSize && last ? await pageTokens.encode(last.endpoint_id, query) : "",
        };
      },

      async updateWebhookEndpoint(req, ctx) {
        const { endpointId, changes } = await parseEndpointUpdate(req, deps.policy);
        return { endpoint: toEndpoint(await updateEndpoint(deps, tenantOf(ctx), endpointId, changes)) };
      },

      async deleteWebhookEndpoint(req, ctx) {
        await deleteEndpoint(deps, tenantOf(ctx), parseIdField(req.endpointId, "endpoint_id", "endpoint"));
        return create(DeleteWebhookEndpointResponseSchema, {});
      },

      async rotateWebhookSecret(req, ctx) {
        const endpointId = parseOptionalIdField(req.endpointId, "endpoint_id", "endpoint");
        const rotated = await rotateSecret(deps, tenantOf(ctx), endpointId, parseGracePeriod(req.gracePeriod));
        return {
          signingSecret: rotated.secret,
          ...(rotated.previousExpireTime
            ? { previousSecretExpireTime: timestampFromDate(rotated.previousExpireTime) }
            : {}),
        };
      },

      async listWebhookDeliveries(req, ctx) {
        const tenantId = tenantOf(ctx);
        const pageSize = parsePageSize(req.pageSize, { default: 50, max: 1000 });
        const filter = parseDeliveryFilter(req);
        const query = { tenantId, list: "deliveries", ...filter };
        const beforeId = await pageTokens.decode(req.pageToken, query, isId);
        const rows = await listDeliveries(deps, tenantId, filter, { beforeId, limit: pageSize + 1 });
        const page = rows.slice(0, pageSize);
        const last = page.at(-1);
        return {
          deliveries: page.map((r) => toDelivery(r.delivery, r.attempts)),
          nextPageToken:
            rows.length > pageSize && last ? await pageTokens.encode(last.delivery.delivery_id, query) : "",
        };
      },

      async retryWebhookDelivery(req, ctx) {
        const found = await retryDelivery(deps, tenantOf(ctx), parseIdField(req.deliveryId, "delivery_id", "delivery"));
        return { delivery: toDelivery(found.delivery, found.attempts) };
      },
    });
}
