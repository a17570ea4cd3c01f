// A webhook attempt as a span of its task's trace (when tracing is on and the
// task has a trace): a CLIENT span named after the event type, whose
// `traceparent` travels with the POST.
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { contextOf, traceparentOf, tracer } from "../shared/tracing.js";
import type { ClaimedDelivery } from "./claim-deliveries.js";
import type { SendResult } from "./send-delivery.js";

export async function webhookAttemptSpan(
  claim: ClaimedDelivery,
  send: (traceHeaders: Record<string, string>) => Promise<SendResult>,
): Promise<SendResult> {
  if (!claim.trace_parent) return send({});
  const parent = contextOf(claim.trace_parent);
  const span = tracer().startSpan(
    `webhook ${claim.event_type}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        "http.request.method": "POST",
        // The origin only: paths and queries may carry the receiver's tokens.
        "server.address": claim.target,
        "agentd.task_id": claim.task_id,
        "agentd.delivery_id": claim.delivery_id,
        "agentd.attempt": claim.attempts,
      },
    },
    parent,
  );
  const traceparent = traceparentOf(trace.setSpan(parent, span));
  const result = await context.with(trace.setSpan(parent, span), () => send(traceparent ? { traceparent } : {}));
  if (result.status) span.setAttribute("http.response.status_code", result.status);
  if (result.kind !== "success")
    span.setStatus({ code: SpanStatusCode.ERROR, message: result.error || `HTTP ${result.status}` });
  span.end();
  return result;
}
