// Tasks: filters (state, agent, labels), paging by token, refreshed every few seconds while shown.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { type Task, TaskState } from "../../../../gen/agentd/v1/task_pb.js";
import { api, describeError, type ShownError } from "../api.js";
import { parseLabels, showLabels, stateName, time } from "../format.js";
import { ErrorBox } from "../ui.js";

const REFRESH_MS = 2000;
const STATES = [
  TaskState.QUEUED,
  TaskState.RUNNING,
  TaskState.INPUT_REQUIRED,
  TaskState.SUCCEEDED,
  TaskState.FAILED,
  TaskState.CANCELED,
];

export function TasksView() {
  const [state, setState] = useState("");
  const [agent, setAgent] = useState("");
  const [labels, setLabels] = useState("");
  // The page tokens of the pages before this one, to go back.
  const [pages, setPages] = useState<string[]>([""]);
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [next, setNext] = useState("");
  const [error, setError] = useState<ShownError | null>(null);
  const token = pages[pages.length - 1]!;

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const r = await api.tasks.listTasks({
          pageSize: 20,
          pageToken: token,
          states: state ? [Number(state) as TaskState] : [],
          agent: agent.trim(),
          labels: parseLabels(labels),
        });
        if (stopped) return;
        setTasks(r.tasks);
        setNext(r.nextPageToken);
        setError(null);
      } catch (e) {
        const shown = describeError(e);
        if (!stopped) setError(shown);
        // Refused credentials are not retried: the error says how to sign in again.
        if (shown.credential) return;
      }
      if (!stopped && !document.hidden) timer = setTimeout(load, REFRESH_MS);
    };
    void load();
    const onVisible = () => {
      clearTimeout(timer);
      if (!document.hidden) void load();
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [state, agent, labels, token]);

  const filter = (set: (v: string) => void) => (e: Event) => {
    set((e.target as HTMLInputElement).value);
    setPages([""]);
  };

  return html`<h1>Tasks</h1>
    <form class="filters" onSubmit=${(e: Event) => e.preventDefault()}>
      <div class="field"><label for="f-state">State</label>
        <select id="f-state" value=${state} onChange=${filter(setState)}>
          <option value="">any</option>
          ${STATES.map((s) => html`<option value=${String(s)}>${stateName(s)}</option>`)}
        </select></div>
      <div class="field"><label for="f-agent">Agent</label>
        <input id="f-agent" value=${agent} onChange=${filter(setAgent)} /></div>
      <div class="field"><label for="f-labels">Labels</label>
        <input id="f-labels" placeholder="key=value, …" value=${labels} onChange=${filter(setLabels)} /></div>
    </form>
    <${ErrorBox} error=${error} />
    ${
      tasks === null
        ? error
          ? null
          : html`<p aria-busy="true">Loading tasks…</p>`
        : tasks.length === 0
          ? html`<p>No tasks${state || agent || labels ? " match these filters" : " yet"}.</p>`
          : html`<div class="table-wrap"><table class="tasks">
            <thead><tr><th>Task</th><th>Agent</th><th>State</th><th>Progress</th><th>Labels</th><th>Created</th></tr></thead>
            <tbody>${tasks.map(
              (t) => html`<tr>
                <td><a href=${`#/tasks/${encodeURIComponent(t.id)}`}>${t.id}</a></td>
                <td>${t.agent}</td>
                <td><span class=${`state ${stateName(t.state)}`}>${stateName(t.state)}</span></td>
                <td>${t.progress ? html`<progress max="100" value=${t.progress.percent}></progress>` : null}</td>
                <td>${showLabels(t.labels)}</td>
                <td>${time(t.createTime)}</td>
              </tr>`,
            )}</tbody></table></div>`
    }
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled=${pages.length < 2} onClick=${() => setPages(pages.slice(0, -1))}>← Newer</button>
      <span>Page ${pages.length}</span>
      <button type="button" disabled=${!next} onClick=${() => setPages([...pages, next])}>Older →</button>
    </nav>`;
}
