// Webhook rows as stored, and their protobuf form for WebhookService answers.
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  DeliveryAttemptSchema,
  DeliveryState,
  type WebhookDelivery,
  WebhookDeliverySchema,
  type WebhookEndpoint,
  WebhookEndpointSchema,
} from "../../../gen/agentd/v1/webhook_service_pb.js";

export interface EndpointRow {
  tenant_id: string;
  endpoint_id: string;
  url: string;
  target: string;
  event_types: string[];
  description: string;
  enabled: boolean;
  disabled_reason: string;
  failing_since: Date | null;
  create_time: Date;
  update_time: Date;
}

export const DELIVERY_STATES = ["PENDING", "SENDING", "SUCCEEDED", "FAILED"] as const;
export type DeliveryStateName = (typeof DELIVERY_STATES)[number];

export interface DeliveryRow {
  tenant_id: string;
  delivery_id: string;
  endpoint_id: string | null;
  task_id: string;
  sequence: number;
  event_type: string;
  url: string;
  state: DeliveryStateName;
  attempts: number;
  next_attempt_at: Date;
  lease_expires_at: Date | null;
  create_time: Date;
}

export interface AttemptRow {
  delivery_id: string;
  attempt: number;
  time: Date;
  status_code: number;
  latency_ms: number;
  error: string;
  response_body: string;
}

const STATE_TO_PROTO: Record<DeliveryStateName, DeliveryState> = {
  PENDING: DeliveryState.PENDING,
  SENDING: DeliveryState.SENDING,
  SUCCEEDED: DeliveryState.SUCCEEDED,
  FAILED: DeliveryState.FAILED,
};

export function toEndpoint(row: EndpointRow): WebhookEndpoint {
  return create(WebhookEndpointSchema, {
    id: row.endpoint_id,
    url: row.url,
    eventTypes: row.event_types,
    description: row.description,
    enabled: row.enabled,
    disabledReason: row.disabled_reason,
    createTime: timestampFromDate(row.create_time),
    updateTime: timestampFromDate(row.update_time),
  });
}

export function toDelivery(row: DeliveryRow, attempts: readonly AttemptRow[]): WebhookDelivery {
  return create(WebhookDeliverySchema, {
    id: row.delivery_id,
    endpointId: row.endpoint_id ?? "",
    taskId: row.task_id,
    eventType: row.event_type,
    sequence: BigInt(row.sequence),
    url: row.url,
    state: STATE_TO_PROTO[row.state],
    attempts: attempts.map((a) =>
      create(DeliveryAttemptSchema, {
        attempt: a.attempt,
        time: timestampFromDate(a.time),
        statusCode: a.status_code,
        latency: durationFromMs(a.latency_ms),
        error: a.error,
        responseBody: a.response_body,
      }),
    ),
    ...(row.state === "PENDING" ? { nextAttemptTime: timestampFromDate(row.next_attempt_at) } : {}),
    createTime: timestampFromDate(row.create_time),
  });
}
