// Webhooks: endpoints (create one; its signing secret is shown once), and deliveries with every
// attempt, refreshed every few seconds; a dead letter (failed) can be retried.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import {
  DeliveryState,
  type WebhookDelivery,
  type WebhookEndpoint,
} from "../../../../gen/agentd/v1/webhook_service_pb.js";
import { api, describeError, type ShownError } from "../api.js";
import { deliveryStateName, time } from "../format.js";
import { ErrorBox } from "../ui.js";

const REFRESH_MS = 3000;
const EVENT_TYPES = [
  "task.running",
  "task.progress",
  "task.input_required",
  "task.succeeded",
  "task.failed",
  "task.canceled",
];

export function WebhooksView() {
  const [endpoints, setEndpoints] = useState<WebhookEndpoint[] | null>(null);
  const [deliveries, setDeliveries] = useState<WebhookDelivery[]>([]);
  const [endpointId, setEndpointId] = useState("");
  const [failedOnly, setFailedOnly] = useState(false);
  const [error, setError] = useState<ShownError | null>(null);
  const [url, setUrl] = useState("");
  const [types, setTypes] = useState(
    new Set(["task.input_required", "task.succeeded", "task.failed", "task.canceled"]),
  );
  // Errors of the user's own actions stay until the next action; the refresh does not clear them.
  const [actionError, setActionError] = useState<ShownError | null>(null);
  const [secret, setSecret] = useState("");
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const [e, d] = await Promise.all([
          api.webhooks.listWebhookEndpoints({ pageSize: 100 }),
          api.webhooks.listWebhookDeliveries({
            endpointId,
            pageSize: 50,
            states: failedOnly ? [DeliveryState.FAILED] : [],
          }),
        ]);
        if (stopped) return;
        setEndpoints(e.endpoints);
        setDeliveries(d.deliveries);
        setError(null);
      } catch (err) {
        const shown = describeError(err);
        if (!stopped) setError(shown);
        // Refused credentials are not retried: the error says how to sign in again.
        if (shown.credential) return;
      }
      if (!stopped) timer = setTimeout(load, REFRESH_MS);
    };
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [endpointId, failedOnly, tick]);

  const create = async (e: Event) => {
    e.preventDefault();
    try {
      const r = await api.webhooks.createWebhookEndpoint({
        url: url.trim(),
        eventTypes: [...types],
      });
      setActionError(null);
      setSecret(r.signingSecret);
      setUrl("");
      setTick(tick + 1);
    } catch (err) {
      setActionError(describeError(err));
    }
  };
  const retry = async (d: WebhookDelivery) => {
    try {
      await api.webhooks.retryWebhookDelivery({ deliveryId: d.id });
      setActionError(null);
      setTick(tick + 1);
    } catch (err) {
      setActionError(describeError(err));
    }
  };

  return html`<h1>Webhooks</h1>
    <${ErrorBox} error=${error} />
    <${ErrorBox} error=${actionError} />
    <section class="panel">
      <h2>Endpoints</h2>
      ${
        endpoints === null
          ? html`<p aria-busy=${error ? "false" : "true"}>${error ? "Not available." : "Loading…"}</p>`
          : endpoints.length === 0
            ? html`<p>No endpoints.</p>`
            : html`<ul class="endpoints">${endpoints.map(
                (
                  ep,
                ) => html`<li key=${ep.id}><code>${ep.url}</code> ${ep.enabled ? html`<span class="tag">enabled</span>` : html`<span class="tag bad" title=${ep.disabledReason}>disabled</span>`}
                <small>${ep.eventTypes.join(", ") || "all events"}</small> <small class="id">${ep.id}</small></li>`,
              )}</ul>`
      }
      <form class="inline" onSubmit=${create}>
        <div class="field"><label for="wh-url">URL</label>
          <input id="wh-url" type="url" required placeholder="https://example.com/hook" value=${url}
            onInput=${(e: Event) => setUrl((e.target as HTMLInputElement).value)} /></div>
        <fieldset class="types"><legend>Event types</legend>
          ${EVENT_TYPES.map(
            (t) =>
              html`<label><input type="checkbox" checked=${types.has(t)} onChange=${(e: Event) => {
                const next = new Set(types);
                if ((e.target as HTMLInputElement).checked) next.add(t);
                else next.delete(t);
                setTypes(next);
              }} /> ${t}</label>`,
          )}
        </fieldset>
        <button type="submit">Add endpoint</button>
      </form>
      ${secret ? html`<p class="notice">Signing secret (shown once): <code>${secret}</code></p>` : null}
    </section>
    <section class="panel">
      <h2>Deliveries</h2>
      <div class="filters">
        <div class="field"><label for="wh-endpoint">Endpoint</label>
          <select id="wh-endpoint" value=${endpointId} onChange=${(e: Event) => setEndpointId((e.target as HTMLSelectElement).value)}>
            <option value="">all</option>
            ${(endpoints ?? []).map((ep) => html`<option value=${ep.id}>${ep.url}</option>`)}
          </select></div>
        <div class="field check"><label for="wh-failed">Dead letters only</label>
          <input id="wh-failed" type="checkbox" checked=${failedOnly} onChange=${(e: Event) => setFailedOnly((e.target as HTMLInputElement).checked)} /></div>
      </div>
      ${
        deliveries.length === 0
          ? html`<p>No deliveries.</p>`
          : html`<ul class="deliveries">${deliveries.map(
              // Keyed by id: the list refreshes, and a focused Retry must stay on its own delivery.
              (d) => html`<li key=${d.id} class="delivery" data-testid="delivery">
              <div class="row">
                <span class=${`state ${deliveryStateName(d.state)}`}>${deliveryStateName(d.state)}</span>
                <code>${d.eventType}</code>
                <span>task <a href=${`#/tasks/${encodeURIComponent(d.taskId)}`}>${d.taskId}</a> #${String(d.sequence)}</span>
                <small>${d.url}</small>
                ${d.state === DeliveryState.FAILED ? html`<button type="button" onClick=${() => retry(d)}>Retry</button>` : null}
              </div>
              ${d.state === DeliveryState.PENDING && d.nextAttemptTime ? html`<small>next attempt ${time(d.nextAttemptTime)}</small>` : null}
              <div class="table-wrap"><table class="attempts">
                <thead><tr><th>#</th><th>Time</th><th>Status</th><th>Latency</th><th>Error / response</th></tr></thead>
                <tbody>${d.attempts.map(
                  (
                    a,
                  ) => html`<tr key=${a.attempt}><td>${a.attempt}</td><td>${time(a.time)}</td><td>${a.statusCode || "—"}</td>
                    <td>${a.latency ? `${Number(a.latency.seconds) * 1000 + Math.round(a.latency.nanos / 1e6)} ms` : "—"}</td>
                    <td><code class="small">${[a.error, a.responseBody].filter(Boolean).join(" — ")}</code></td></tr>`,
                )}</tbody></table></div>
            </li>`,
            )}</ul>`
      }
    </section>`;
}
