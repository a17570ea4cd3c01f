// Agents: their cards, and for one agent a form from its input schema to run it synchronously or
// to create a task (then opened live).
import type { JsonValue } from "@bufbuild/protobuf";
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import type { Agent } from "../../../../gen/agentd/v1/agent_service_pb.js";
import type { Task } from "../../../../gen/agentd/v1/task_pb.js";
import { api, describeError, type ShownError } from "../api.js";
import { json, parseLabels, stateName, toValue } from "../format.js";
import { SchemaForm } from "../schema-form.js";
import { ErrorBox } from "../ui.js";

export function AgentsView(props: { name?: string }) {
  const [agents, setAgents] = useState<Agent[] | null>(null);
  const [error, setError] = useState<ShownError | null>(null);
  useEffect(() => {
    api.agents.listAgents({ pageSize: 100 }).then(
      (r) => setAgents(r.agents),
      (e) => setError(describeError(e)),
    );
  }, []);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!agents) return html`<p aria-busy="true">Loading agents…</p>`;
  const chosen = props.name ? agents.find((a) => a.name === props.name) : undefined;
  if (chosen) return html`<${AgentDetail} agent=${chosen} />`;
  return html`<h1>Agents</h1>
    <ul class="cards">
      ${agents.map(
        (a) => html`<li class="card">
          <h2><a href=${`#/agents/${encodeURIComponent(a.name)}`}>${a.name}</a> <small>v${a.version}</small></h2>
          <p>${a.description}</p>
          <p class="tags">${a.capabilities.map((c) => html`<span class="tag">${c}</span>`)}
            ${a.available ? null : html`<span class="tag bad" title=${a.unavailableReason}>unavailable</span>`}</p>
        </li>`,
      )}
    </ul>`;
}

function AgentDetail(props: { agent: Agent }) {
  const a = props.agent;
  const [labels, setLabels] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ShownError | null>(null);
  const [result, setResult] = useState<Task | null>(null);

  const call = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  const run = (input: JsonValue) =>
    call(async () => {
      const r = await api.agents.run({ agent: a.name, input: toValue(input), labels: parseLabels(labels) });
      setResult(r.task ?? null);
    });
  const create = (input: JsonValue) =>
    call(async () => {
      const r = await api.tasks.createTask({ agent: a.name, input: toValue(input), labels: parseLabels(labels) });
      location.hash = `#/tasks/${encodeURIComponent(r.task!.id)}`;
    });

  return html`<p><a href="#/agents">← Agents</a></p>
    <h1>${a.name} <small>v${a.version}</small></h1>
    <p>${a.description}</p>
    <section class="panel">
      <h2>Input</h2>
      <div class="field labels"><label for="labels">Labels</label>
        <input id="labels" placeholder="key=value, key=value" value=${labels}
          onInput=${(e: Event) => setLabels((e.target as HTMLInputElement).value)} /></div>
      <${SchemaForm} id="agent-input" schema=${a.inputSchema} busy=${busy}
        actions=${[{ label: "Run and wait", primary: true, run }, { label: "Create task", run: create }]} />
    </section>
    ${busy ? html`<p aria-busy="true">Running…</p>` : null}
    <${ErrorBox} error=${error} />
    ${
      result
        ? html`<section class="panel result" aria-live="polite">
          <h2>Result: <span class=${`state ${stateName(result.state)}`}>${stateName(result.state)}</span>${" "}
            <a href=${`#/tasks/${encodeURIComponent(result.id)}`}>task ${result.id}</a></h2>
          ${result.error ? html`<p class="error"><strong>${result.error.code}</strong>: ${result.error.message}</p>` : null}
          <pre class="output">${json(result.output)}</pre>
        </section>`
        : null
    }
    <details><summary>Input and output schemas</summary>
      <pre>${json(a.inputSchema)}</pre><pre>${json(a.outputSchema)}</pre></details>`;
}
