// WebhookService at the edge: parse and check the request, call one use case,
// map the result. Deliveries themselves are made by the notifier service.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  DeleteWebhookEndpointResponseSchema,
  DeliveryState,
  WebhookService,
} from "../../../gen/agentd/v1/webhook_service_pb.js";
import type { Sql } from "../../shared/db/database.js";
import { invalidArgument, notFound } from "../../shared/errors.js";
import { isId } from "../../shared/ids.js";
import { checkWebhookUrl, type UrlPolicy } from "../../shared/webhooks/url-policy.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import { targetOf } from "../outbox/event-types.js";
import type { WebhookOutbox } from "../outbox/outbox.js";
import { createEndpoint } from "../webhooks/create-endpoint.js";
import { deleteEndpoint } from "../webhooks/delete-endpoint.js";
import { findDelivery, listDeliveries } from "../webhooks/list-deliveries.js";
import { findEndpoint, listEndpoints } from "../webhooks/list-endpoints.js";
import { DELIVERY_STATES, type DeliveryStateName, toDelivery, toEndpoint } from "../webhooks/records.js";
import { retryDelivery } from "../webhooks/retry-delivery.js";
import { rotateSecret } from "../webhooks/rotate-secret.js";
import { type EndpointChanges, updateEndpoint } from "../webhooks/update-endpoint.js";
import { principalOf } from "./interceptors.js";
import { createPageTokens, databasePageTokenKey } from "./page-token.js";
import { durationMs, parseEventTypes, parsePageSize, Violations } from "./request-fields.js";

export interface WebhookServiceDeps {
  sql: Sql;
  bus: WakeupBus;
  policy: UrlPolicy;
  /** Told about endpoint changes, so this replica's outbox sees them at once. */
  outbox: Pick<WebhookOutbox, "invalidate">;
}

const DEFAULT_GRACE_MS = 24 * 3600_000;
const MAX_GRACE_MS = 7 * 24 * 3600_000;
const MAX_DESCRIPTION = 500;
const UPDATABLE = ["url", "event_types", "description", "enabled"] as const;

/** An id from a request: empty is INVALID_ARGUMENT; anything that cannot name a row is NOT_FOUND. */
function parseId(value: string, field: string, kind: string): string {
  if (value === "") throw invalidArgument([{ field, description: "is required" }]);
  if (!isId(value)) throw notFound(kind, value);
  return value.toLowerCase();
}

function parseEndpointFields(
  v: Violations,
  fields: { eventTypes?: string[]; description?: string },
  prefix: string,
): { eventTypes?: string[]; description?: string } {
  const out: { eventTypes?: string[]; description?: string } = {};
  if (fields.eventTypes !== undefined) {
    if (fields.eventTypes.length === 0) v.add(`${prefix}event_types`, "must name at least one event type");
    out.eventTypes = parseEventTypes(v, `${prefix}event_types`, fields.eventTypes);
  }
  if (fields.description !== undefined) {
    if (fields.description.length > MAX_DESCRIPTION) v.add(`${prefix}description`, `must be at most ${MAX_DESCRIPTION} characters`);
    out.description = fields.description;
  }
  return out;
}

function parseDeliveryStates(states: DeliveryState[]): DeliveryStateName[] {
  const v = new Violations();
  const names = states.map((state, i) => {
    const name = DeliveryState[state]?.replace(/^DELIVERY_STATE_/, "") as DeliveryStateName | undefined;
    if (!name || !DELIVERY_STATES.includes(name)) v.add(`states[${i}]`, `is not a delivery state (${state})`);
    return name!;
  });
  v.throwIfAny();
  return [...new Set(names)];
}

export function webhookServiceRoutes(deps: WebhookServiceDeps) {
  const { sql } = deps;
  const tenantOf = (ctx: HandlerContext) => principalOf(ctx).tenantId;
  const pageTokens = createPageTokens(databasePageTokenKey(sql));

  /** Checks a URL to register; adds a violation on `field` when refused. */
  async function checkUrl(v: Violations, field: string, url: string): Promise<{ url: string; target: string }> {
    if (url === "") v.add(field, "is required");
    else {
      const problem = await checkWebhookUrl(url, deps.policy);
      if (problem) v.add(field, problem.description, problem.reason);
    }
    return { url, target: v.list.some((x) => x.field === field) ? "" : targetOf(url) };
  }

  return (router: ConnectRouter) =>
    router.service(WebhookService, {
      async createWebhookEndpoint(req, ctx) {
        const tenantId = tenantOf(ctx);
        const v = new Violations();
        const fields = parseEndpointFields(v, { eventTypes: req.eventTypes, description: req.description }, "");
        const url = await checkUrl(v, "url", req.url);
        v.throwIfAny();
        const { endpoint, secret } = await createEndpoint(sql, tenantId, {
          ...url,
          eventTypes: fields.eventTypes!,
          description: fields.description ?? "",
        });
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
        const given = req.endpoint;
        if (!given) throw invalidArgument([{ field: "endpoint", description: "is required" }]);
        const endpointId = parseId(given.id, "endpoint.id", "endpoint");
        const v = new Violations();
        const paths = req.updateMask?.paths.length ? req.updateMask.paths : [...UPDATABLE];
        paths.forEach((path, i) => {
          if (!(UPDATABLE as readonly string[]).includes(path)) {
            v.add(`update_mask.paths[${i}]`, `cannot update "${path}"; updatable: ${UPDATABLE.join(", ")}`);
          }
        });
        const has = (p: (typeof UPDATABLE)[number]) => paths.includes(p);
        const fields = parseEndpointFields(
          v,
          {
            ...(has("event_types") ? { eventTypes: given.eventTypes } : {}),
            ...(has("description") ? { description: given.description } : {}),
          },
          "endpoint.",
        );
        const changes: EndpointChanges = { ...fields };
        if (has("url")) changes.url = await checkUrl(v, "endpoint.url", given.url);
        if (has("enabled")) changes.enabled = given.enabled;
        v.throwIfAny();
        const row = await updateEndpoint(sql, tenantId, endpointId, changes);
        if (!row) throw notFound("endpoint", endpointId);
        deps.outbox.invalidate(tenantId);
        return { endpoint: toEndpoint(row) };
      },

      async deleteWebhookEndpoint(req, ctx) {
        const tenantId = tenantOf(ctx);
        const endpointId = parseId(req.endpointId, "endpoint_id", "endpoint");
        if (!(await deleteEndpoint(sql, tenantId, endpointId))) throw notFound("endpoint", endpointId);
        deps.outbox.invalidate(tenantId);
        return create(DeleteWebhookEndpointResponseSchema, {});
      },

      async rotateWebhookSecret(req, ctx) {
        const tenantId = tenantOf(ctx);
        const endpointId = req.endpointId === "" ? null : parseId(req.endpointId, "endpoint_id", "endpoint");
        const graceMs = req.gracePeriod ? durationMs(req.gracePeriod) : DEFAULT_GRACE_MS;
        if (graceMs < 0 || graceMs > MAX_GRACE_MS) {
          throw invalidArgument([{ field: "grace_period", description: "must be between 0s and 7 days" }]);
        }
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
        const filter = {
          endpointId: req.endpointId === "" ? null : parseId(req.endpointId, "endpoint_id", "endpoint"),
          taskId: req.taskId === "" ? null : parseId(req.taskId, "task_id", "task"),
          states: parseDeliveryStates(req.states),
        };
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
        const deliveryId = parseId(req.deliveryId, "delivery_id", "delivery");
        await retryDelivery(sql, tenantId, deliveryId);
        deps.bus.publish("delivery", deliveryId);
        const found = await findDelivery(sql, tenantId, deliveryId);
        if (!found) throw notFound("delivery", deliveryId);
        return { delivery: toDelivery(found.delivery, found.attempts) };
      },
    });
}
