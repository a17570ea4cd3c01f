// One task, live: its state and progress, streamed tokens, tool calls, artifacts, logs and the full
// event log from WatchTask (server streaming over Connect-Web, resumed after the last sequence seen
// when the stream breaks); a form for an input request; cancel and delete.
import type { JsonValue } from "@bufbuild/protobuf";
import { html } from "htm/preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Artifact, Task, TaskEvent, ToolCall } from "../../../../gen/agentd/v1/task_pb.js";
import { api, describeError, isAbort, type ShownError } from "../api.js";
import { isTerminal, json, showLabels, stateName, time, toValue } from "../format.js";
import { renderMarkdown } from "../markdown.js";
import { SchemaForm } from "../schema-form.js";
import { ErrorBox } from "../ui.js";

interface Live {
  task: Task | null;
  events: TaskEvent[];
  output: string;
  tools: Map<string, ToolCall>;
  artifacts: Artifact[];
  logs: { level: string; message: string; sequence: bigint }[];
  lastSequence: bigint;
}

const empty = (): Live => ({
  task: null,
  events: [],
  output: "",
  tools: new Map(),
  artifacts: [],
  logs: [],
  lastSequence: 0n,
});

function apply(live: Live, e: TaskEvent): Live {
  if (e.sequence <= live.lastSequence) return live;
  const next: Live = { ...live, events: [...live.events, e], lastSequence: e.sequence };
  const ev = e.event;
  switch (ev.case) {
    case "stateChange":
      if (ev.value.task) next.task = ev.value.task;
      else if (next.task) next.task = { ...next.task, state: ev.value.state };
      break;
    case "progress":
      if (next.task) next.task = { ...next.task, progress: ev.value };
      break;
    case "delta":
      next.output = live.output + ev.value.text;
      break;
    case "toolCall":
      next.tools = new Map(live.tools).set(ev.value.id || String(e.sequence), ev.value);
      break;
    case "artifact":
      next.artifacts = [...live.artifacts.filter((a) => a.name !== ev.value.name), ev.value];
      break;
    case "log":
      next.logs = [...live.logs, { level: ev.value.level, message: ev.value.message, sequence: e.sequence }];
      break;
    case "inputRequest":
      if (next.task) next.task = { ...next.task, inputRequest: ev.value };
      break;
  }
  return next;
}

export function TaskView(props: { id: string }) {
  const [live, setLive] = useState<Live>(empty);
  const [error, setError] = useState<ShownError | null>(null);
  const [streaming, setStreaming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [deleted, setDeleted] = useState(false);
  // The Delete button goes away with the task: focus moves to the message that says so.
  const gone = useRef<HTMLParagraphElement>(null);
  // The answer form goes away once it is sent: focus moves to the task's title, above its state.
  const title = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (deleted) gone.current?.focus();
  }, [deleted]);

  useEffect(() => {
    const abort = new AbortController();
    let after = 0n;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const watch = async () => {
      try {
        const { task } = await api.tasks.getTask({ taskId: props.id }, { signal: abort.signal });
        setLive((l) => ({ ...l, task: l.task ?? task ?? null }));
        setStreaming(true);
        setError(null);
        for await (const r of api.tasks.watchTask(
          { taskId: props.id, afterSequence: after },
          { signal: abort.signal },
        )) {
          if (!r.event) continue;
          const event = r.event;
          after = event.sequence > after ? event.sequence : after;
          setLive((l) => apply(l, event));
        }
        setStreaming(false);
        // The stream ends when the task is terminal; refresh the final task (output, artifacts).
        const done = await api.tasks.getTask({ taskId: props.id }, { signal: abort.signal });
        if (done.task && !isTerminal(done.task.state)) timer = setTimeout(watch, 1000);
        setLive((l) => ({ ...l, task: done.task ?? l.task }));
      } catch (e) {
        setStreaming(false);
        if (abort.signal.aborted || isAbort(e)) return;
        const shown = describeError(e);
        setError(shown);
        // A broken stream resumes after the last event seen; refusals and missing tasks do not retry.
        if (["UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN", "INTERNAL", "RESOURCE_EXHAUSTED"].includes(shown.code)) {
          timer = setTimeout(watch, 2000);
        }
      }
    };
    void watch();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [props.id]);

  const act = async (fn: () => Promise<void>) => {
    setBusy(true);
    try {
      await fn();
      setError(null);
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  const answer = (value: JsonValue) =>
    act(async () => {
      const r = await api.tasks.provideInput({ taskId: props.id, value: toValue(value) });
      if (r.task) setLive((l) => ({ ...l, task: r.task! }));
      title.current?.focus();
    });
  const cancel = () =>
    act(async () => {
      const r = await api.tasks.cancelTask({ taskId: props.id });
      if (r.task) setLive((l) => ({ ...l, task: r.task! }));
    });
  const remove = () => {
    if (!confirm(`Delete task ${props.id} and its events?`)) return;
    void act(async () => {
      await api.tasks.deleteTask({ taskId: props.id });
      setDeleted(true);
    });
  };

  if (deleted)
    return html`<p ref=${gone} tabindex="-1" role="status">Task ${props.id} was deleted. <a href="#/tasks">Back to tasks</a></p>`;
  const t = live.task;
  if (!t)
    return html`<p><a href="#/tasks">← Tasks</a></p>${error ? html`<${ErrorBox} error=${error} />` : html`<p aria-busy="true">Loading task…</p>`}`;
  const state = stateName(t.state);
  const terminal = isTerminal(t.state);
  const input = state === "input_required" ? t.inputRequest : undefined;
  const tools = [...live.tools.values()];

  return html`<p><a href="#/tasks">← Tasks</a></p>
    <h1 class="task-title" ref=${title} tabindex="-1">Task <code>${t.id}</code></h1>
    <div class="summary">
      <span class=${`state ${state}`} data-testid="task-state" aria-live="polite">${state}</span>
      <span>agent <a href=${`#/agents/${encodeURIComponent(t.agent)}`}>${t.agent}</a> v${t.agentVersion}</span>
      <span>attempt ${t.attempt}/${t.maxAttempts}</span>
      <span>${streaming ? "● live" : terminal ? "finished" : "not connected"}</span>
    </div>
    <div class="progress">
      <progress max="100" value=${terminal && state === "succeeded" ? 100 : (t.progress?.percent ?? 0)} aria-label="Progress"></progress>
      <span>${t.progress ? `${t.progress.step}/${t.progress.totalSteps} ${t.progress.message}` : ""}</span>
    </div>
    <div class="actions">
      <button type="button" disabled=${busy || terminal} onClick=${cancel}>Cancel</button>
      <button type="button" class="danger" disabled=${busy || !terminal} onClick=${remove}>Delete</button>
    </div>
    <${ErrorBox} error=${error} />
    ${
      input
        ? html`<section class="panel ask" aria-labelledby="ask-title">
          <h2 id="ask-title">Input requested</h2>
          <p class="prompt">${input.prompt}</p>
          ${input.expireTime ? html`<p><small>Expires ${time(input.expireTime)}</small></p>` : null}
          <${SchemaForm} key=${String(live.lastSequence)} id="answer" schema=${input.schema} busy=${busy}
            actions=${[{ label: "Send answer", primary: true, run: answer }]} />
        </section>`
        : null
    }
    ${t.error ? html`<p class="error"><strong>${t.error.code}</strong>: ${t.error.message}${t.error.retryable ? " (retryable)" : ""}</p>` : null}
    ${live.output ? html`<section class="panel"><h2>Streamed output</h2><pre class="stream" data-testid="stream">${live.output}</pre></section>` : null}
    ${t.output ? html`<section class="panel"><h2>Output</h2><pre class="output" data-testid="output">${json(t.output)}</pre></section>` : null}
    ${
      tools.length
        ? html`<section class="panel"><h2>Tool calls</h2>${tools.map(
            (
              c,
            ) => html`<details open><summary><code>${c.name}</code> ${c.error ? html`<span class="state failed">error</span>` : c.result !== undefined ? "✓" : "…"}</summary>
            <h3>Arguments</h3><pre>${json(c.arguments)}</pre>
            ${c.result !== undefined ? html`<h3>Result</h3><pre>${json(c.result)}</pre>` : null}
            ${c.error ? html`<p class="error">${c.error}</p>` : null}</details>`,
          )}</section>`
        : null
    }
    ${
      (t.artifacts.length ? t.artifacts : live.artifacts).length
        ? html`<section class="panel"><h2>Artifacts</h2>${(t.artifacts.length ? t.artifacts : live.artifacts).map((a) => html`<${ArtifactView} key=${a.name} artifact=${a} />`)}</section>`
        : null
    }
    ${
      live.logs.length
        ? html`<section class="panel"><h2>Logs</h2><pre class="logs">${live.logs.map((l) => `[${l.level}] ${l.message}\n`)}</pre></section>`
        : null
    }
    <section class="panel"><h2>Details</h2>
      <dl class="meta">
        <dt>Created</dt><dd>${time(t.createTime)}</dd><dt>Started</dt><dd>${time(t.startTime)}</dd>
        <dt>Ended</dt><dd>${time(t.endTime)}</dd><dt>Labels</dt><dd>${showLabels(t.labels) || "—"}</dd>
        <dt>Request id</dt><dd>${t.requestId || "—"}</dd>
      </dl>
      <details><summary>Input</summary><pre>${json(t.input)}</pre></details>
    </section>
    <details class="panel events"><summary>Event log (${live.events.length})</summary>
      <ul class="event-list">${live.events.map((e) => html`<li key=${String(e.sequence)}><code>#${String(e.sequence)}</code> ${time(e.time)} <strong>${e.event.case}</strong> <code class="small">${summarize(e)}</code></li>`)}</ul>
    </details>`;
}

function summarize(e: TaskEvent): string {
  const ev = e.event;
  switch (ev.case) {
    case "stateChange":
      return stateName(ev.value.state);
    case "progress":
      return `${ev.value.step}/${ev.value.totalSteps} ${ev.value.message}`;
    case "delta":
      return JSON.stringify(ev.value.text);
    case "toolCall":
      return `${ev.value.name}(${json(ev.value.arguments).replace(/\s+/g, " ")})`;
    case "inputRequest":
      return ev.value.prompt;
    case "artifact":
      return `${ev.value.name} (${ev.value.mimeType})`;
    case "log":
      return `[${ev.value.level}] ${ev.value.message}`;
    default:
      return "";
  }
}

/** A blob: URL for binary content while it is shown (made once, released when it goes away). */
function useObjectUrl(bytes: Uint8Array | undefined, type: string): string {
  const url = useMemo(
    () => (bytes ? URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type })) : ""),
    [bytes, type],
  );
  useEffect(() => () => URL.revokeObjectURL(url), [url]);
  return url;
}

function ArtifactView(props: { artifact: Artifact }) {
  const a = props.artifact;
  const c = a.content;
  const url = useObjectUrl(c.case === "data" ? c.value : undefined, a.mimeType || "application/octet-stream");
  let body: unknown = null;
  if (c.case === "text") {
    body =
      a.mimeType === "text/markdown"
        ? html`<div class="markdown" dangerouslySetInnerHTML=${{ __html: renderMarkdown(c.value) }}></div>`
        : html`<pre>${c.value}</pre>`;
  } else if (c.case === "data") {
    body = /^image\/(png|jpeg|gif|webp)$/.test(a.mimeType)
      ? html`<img src=${url} alt=${a.name} />`
      : html`<a href=${url} download=${a.name}>Download (${c.value.byteLength} bytes)</a>`;
  }
  return html`<article class="artifact"><h3>${a.name} <small>${a.mimeType}</small></h3>${body}</article>`;
}
