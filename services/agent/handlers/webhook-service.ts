// WebhookService at the edge: parse and check the request, call one use case,
// map the result. Deliveries themselves are made by the notifier service.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { DeleteWebhookEndpointResponseSchema, WebhookService } from "../../../gen/agentd/v1/webhook_service_pb.js";
import type { Sql } from "../../shared/db/database.js";
import { notFound } from "../../shared/errors.js";
import { isId } from "../../shared/ids.js";
import type { UrlPolicy } from "../../shared/webhooks/url-policy.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import type { WebhookOutbox } from "../outbox/outbox.js";
import { createEndpoint } from "../webhooks/create-endpoint.js";
import { deleteEndpoint } from "../webhooks/delete-endpoint.js";
import { findDelivery, listDeliveries } from "../webhooks/list-deliveries.js";
import { findEndpoint, listEndpoints } from "../webhooks/list-endpoints.js";
import { toDelivery, toEndpoint } from "../webhooks/records.js";
import { retryDelivery } from "../webhooks/retry-delivery.js";
import { rotateSecret } from "../webhooks/rotate-secret.js";
import { updateEndpoint } from "../webhooks/update-endpoint.js";
import { principalOf } from "./interceptors.js";
import { createPageTokens, databasePageTokenKey } from "./page-token.js";
import { parseIdField, parseOptionalIdField, parsePageSize } from "./request-fields.js";
import { parseDeliveryFilter, parseEndpointUpdate, parseGracePeriod, parseNewEndpoint } from "./webhook-fields.js";

export interface WebhookServiceDeps {
  sql: Sql;
  bus: WakeupBus;
  policy: UrlPolicy;
  /** Told about endpoint changes, so this replica's outbox sees them at once. */
  outbox: Pick<WebhookOutbox, "invalidate">;
}

export function webhookServiceRoutes(deps: WebhookServiceDeps) {
  const { sql } = deps;
  const tenantOf = (ctx: HandlerContext) => principalOf(ctx).tenantId;
  const pageTokens = createPageTokens(databasePageTokenKey(sql));

  return (router: ConnectRouter) =>
    router.service(WebhookService, {
      async createWebhookEndpoint(req, ctx) {
        const tenantId = tenantOf(ctx);
        const { endpoint, secret } = await createEndpoint(sql, tenantId, await parseNewEndpoint(req, deps.policy));
        deps.outbox.invalidate(tenantId);
        return { endpoint: toEndpoint(endpoint), signingSecret: secret };
      },

      async listWebhookEndpoints(req, ctx) {
        const tenantId = tenantOf(ctx);
        const pageSize = parsePageSize(req.pageSize, { default: 50, max: 1000 });
        const query = { tenantId, list: "endpoints" };
        const afterId = await pageTokens.decode(req.pageToken, query, isId);
        const rows = await listEndpoints(sql, tenantId, { afterId, limit: pageSize + 1 });
        const page = rows.slice(0, pageSize);
        const last = page.at(-1);
        return {
          endpoints: page.map(toEndpoint),
          nextPageToken: rows.length > pageSize && last ? await pageTokens.encode(last.endpoint_id, query) : "",
        };
      },

      async updateWebhookEndpoint(req, ctx) {
        const tenantId = tenantOf(ctx);
        const { endpointId, changes } = await parseEndpointUpdate(req, deps.policy);
        const row = await updateEndpoint(sql, tenantId, endpointId, changes);
        if (!row) throw notFound("endpoint", endpointId);
        deps.outbox.invalidate(tenantId);
        return { endpoint: toEndpoint(row) };
      },

      async deleteWebhookEndpoint(req, ctx) {
        const tenantId = tenantOf(ctx);
        const endpointId = parseIdField(req.endpointId, "endpoint_id", "endpoint");
        if (!(await deleteEndpoint(sql, tenantId, endpointId))) throw notFound("endpoint", endpointId);
        deps.outbox.invalidate(tenantId);
        return create(DeleteWebhookEndpointResponseSchema, {});
      },

      async rotateWebhookSecret(req, ctx) {
        const tenantId = tenantOf(ctx);
        const endpointId = parseOptionalIdField(req.endpointId, "endpoint_id", "endpoint");
        const graceMs = parseGracePeriod(req.gracePeriod);
        const rotated = await rotateSecret(sql, tenantId, endpointId, graceMs);
        if (!rotated) throw notFound("endpoint", endpointId!);
        return {
          signingSecret: rotated.secret,
          ...(rotated.previousExpireTime ? { previousSecretExpireTime: timestampFromDate(rotated.previousExpireTime) } : {}),
        };
      },

      async listWebhookDeliveries(req, ctx) {
        const tenantId = tenantOf(ctx);
        const pageSize = parsePageSize(req.pageSize, { default: 50, max: 1000 });
        const filter = parseDeliveryFilter(req);
        const query = { tenantId, list: "deliveries", ...filter };
        const beforeId = await pageTokens.decode(req.pageToken, query, isId);
        if (filter.endpointId && !(await findEndpoint(sql, tenantId, filter.endpointId))) throw notFound("endpoint", filter.endpointId);
        const rows = await listDeliveries(sql, tenantId, filter, { beforeId, limit: pageSize + 1 });
        const page = rows.slice(0, pageSize);
        const last = page.at(-1);
        return {
          deliveries: page.map((r) => toDelivery(r.delivery, r.attempts)),
          nextPageToken: rows.length > pageSize && last ? await pageTokens.encode(last.delivery.delivery_id, query) : "",
        };
      },

      async retryWebhookDelivery(req, ctx) {
        const tenantId = tenantOf(ctx);
        const deliveryId = parseIdField(req.deliveryId, "delivery_id", "delivery");
        await retryDelivery(sql, tenantId, deliveryId);
        deps.bus.publish("delivery", deliveryId);
        const found = await findDelivery(sql, tenantId, deliveryId);
        if (!found) throw notFound("delivery", deliveryId);
        return { delivery: toDelivery(found.delivery, found.attempts) };
      },
    });
}
