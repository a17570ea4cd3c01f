// WebhookService's request fields, parsed as in request-fields.ts: each id, enum
// and URL once. A URL to register is also checked against the SSRF guard here,
// so that its problem is reported with the request's other field violations.
import type { Duration } from "@bufbuild/protobuf/wkt";
import { DeliveryState, type WebhookEndpoint } from "../../../gen/agentd/v1/webhook_service_pb.js";
import { invalidArgument } from "../../shared/errors.js";
import { checkDestination, parseWebhookUrl, type UrlPolicy } from "../../shared/webhooks/url-policy.js";
import { targetOf } from "../outbox/event-types.js";
import type { NewEndpoint } from "../webhooks/create-endpoint.js";
import type { DeliveryFilter } from "../webhooks/list-deliveries.js";
import { DELIVERY_STATES } from "../webhooks/records.js";
import type { EndpointChanges } from "../webhooks/update-endpoint.js";
import {
  durationMs,
  parseEnumNames,
  parseEventTypes,
  parseIdField,
  parseOptionalIdField,
  Violations,
} from "./request-fields.js";

const MAX_DESCRIPTION = 500;
const UPDATABLE = ["url", "event_types", "description", "enabled"] as const;
const DEFAULT_GRACE_MS = 24 * 3600_000;
const MAX_GRACE_MS = 7 * 24 * 3600_000;

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
    if (fields.description.length > MAX_DESCRIPTION)
      v.add(`${prefix}description`, `must be at most ${MAX_DESCRIPTION} characters`);
    out.description = fields.description;
  }
  return out;
}

/** A URL to register, parsed once and checked (SSRF guard included); a violation on `field` when refused. */
async function parseEndpointUrl(
  v: Violations,
  field: string,
  text: string,
  policy: UrlPolicy,
): Promise<{ url: string; target: string } | undefined> {
  if (text === "") {
    v.add(field, "is required");
    return undefined;
  }
  const parsed = parseWebhookUrl(text, policy.allowHttp);
  const problem = "url" in parsed ? await checkDestination(parsed.url, policy.guard) : parsed;
  if ("url" in parsed && !problem) return { url: text, target: targetOf(parsed.url) };
  if (problem) v.add(field, problem.description, problem.reason);
  return undefined;
}

export async function parseNewEndpoint(
  req: { url: string; eventTypes: string[]; description: string },
  policy: UrlPolicy,
): Promise<NewEndpoint> {
  const v = new Violations();
  const fields = parseEndpointFields(v, { eventTypes: req.eventTypes, description: req.description }, "");
  const url = await parseEndpointUrl(v, "url", req.url, policy);
  v.throwIfAny();
  return { ...url!, eventTypes: fields.eventTypes!, description: fields.description ?? "" };
}

/** UpdateWebhookEndpoint: the endpoint's id and the changes its update mask names (all updatable fields without one). */
export async function parseEndpointUpdate(
  req: { endpoint?: WebhookEndpoint | undefined; updateMask?: { paths: string[] } | undefined },
  policy: UrlPolicy,
): Promise<{ endpointId: string; changes: EndpointChanges }> {
  const given = req.endpoint;
  if (!given) throw invalidArgument([{ field: "endpoint", description: "is required" }]);
  const endpointId = parseIdField(given.id, "endpoint.id", "endpoint");
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
  if (has("url")) {
    const url = await parseEndpointUrl(v, "endpoint.url", given.url, policy);
    if (url) changes.url = url;
  }
  if (has("enabled")) changes.enabled = given.enabled;
  v.throwIfAny();
  return { endpointId, changes };
}

/** How long a rotated-out secret keeps signing: 24 h unless given, at most 7 days. */
export function parseGracePeriod(gracePeriod: Duration | undefined): number {
  const graceMs = gracePeriod ? durationMs(gracePeriod) : DEFAULT_GRACE_MS;
  if (graceMs < 0 || graceMs > MAX_GRACE_MS)
    throw invalidArgument([{ field: "grace_period", description: "must be between 0s and 7 days" }]);
  return graceMs;
}

/** ListWebhookDeliveries' filter (its keys also make the page token's query). */
export function parseDeliveryFilter(req: {
  endpointId: string;
  taskId: string;
  states: DeliveryState[];
}): DeliveryFilter {
  return {
    endpointId: parseOptionalIdField(req.endpointId, "endpoint_id", "endpoint"),
    taskId: parseOptionalIdField(req.taskId, "task_id", "task"),
    states: parseEnumNames(req.states, DeliveryState, DELIVERY_STATES, "delivery state"),
  };
}
