// Tasks: filters (state, agent, labels), paging by token, refreshed every few seconds while shown.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { type Task, TaskState } from "../../../../gen/agentd/v1/task_pb.js";
import { api, describeError, type ShownError } from "../api.js";
import { labelsProblem, parseLabels, showLabels, stateName, time } from "../format.js";
import { ErrorBox } from "../ui.js";

const REFRESH_MS = 2000;
/** How long typing in a text filter pauses before the list is asked again. */
const SETTLE_MS = 300;
const STATES = [
  TaskState.QUEUED,
  TaskState.RUNNING,
  TaskState.INPUT_REQUIRED,
  TaskState.SUCCEEDED,
  TaskState.FAILED,
  TaskState.CANCELED,
];

/** The filters, kept in the URL (#/tasks?state=running&agent=…&labels=…) so Back from a task keeps them. */
interface Filters {
  state: string;
  agent: string;
  labels: string;
}

function readFilters(query: URLSearchParams): Filters {
  const state = query.get("state") ?? "";
  return {
    state: STATES.some((s) => stateName(s) === state) ? state : "",
    agent: query.get("agent") ?? "",
    labels: query.get("labels") ?? "",
  };
}

function writeFilters(f: Filters) {
  const query = new URLSearchParams(Object.entries(f).filter(([, v]) => v.trim() !== ""));
  const hash = `#/tasks${query.size ? `?${query}` : ""}`;
  // replaceState: no hashchange (the view keeps its focus), and Back leaves the list at once.
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

export function TasksView(props: { query: URLSearchParams }) {
  const [filters, setFilters] = useState<Filters>(() => readFilters(props.query));
  // What is asked for: the text filters settle for a moment first, so typing is not a request per key.
  const [asked, setAsked] = useState<Filters>(filters);
  // The page tokens of the pages before this one, to go back.
  const [pages, setPages] = useState<string[]>([""]);
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [next, setNext] = useState("");
  const [error, setError] = useState<ShownError | null>(null);
  const token = pages[pages.length - 1]!;
  const labelsWrong = labelsProblem(asked.labels);

  useEffect(() => {
    writeFilters(filters);
    if (filters.state === asked.state && filters.agent === asked.agent && filters.labels === asked.labels) return;
    const timer = setTimeout(() => {
      setAsked(filters);
      setPages([""]);
    }, SETTLE_MS);
    return () => clearTimeout(timer);
  }, [filters, asked]);

  useEffect(() => {
    if (labelsWrong) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const state = STATES.find((s) => stateName(s) === asked.state);
    const load = async () => {
      try {
        const r = await api.tasks.listTasks({
          pageSize: 20,
          pageToken: token,
          states: state === undefined ? [] : [state],
          agent: asked.agent.trim(),
          labels: parseLabels(asked.labels),
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
  }, [asked, token]);

  const set = (name: keyof Filters, settle: boolean) => (e: Event) => {
    const next = { ...filters, [name]: (e.target as HTMLInputElement).value };
    setFilters(next);
    if (!settle) {
      setAsked(next);
      setPages([""]);
    }
  };
  const filtered = asked.state !== "" || asked.agent.trim() !== "" || asked.labels.trim() !== "";
  const typedLabelsWrong = labelsProblem(filters.labels);

  return html`<h1>Tasks</h1>
    <form class="filters" role="search" aria-label="Filter tasks" onSubmit=${(e: Event) => {
      e.preventDefault();
      setAsked(filters); // Enter applies at once
      setPages([""]);
    }}>
      <div class="field"><label for="f-state">State</label>
        <select id="f-state" value=${filters.state} onChange=${set("state", false)}>
          <option value="">any</option>
          ${STATES.map((s) => html`<option value=${stateName(s)}>${stateName(s)}</option>`)}
        </select></div>
      <div class="field"><label for="f-agent">Agent</label>
        <input id="f-agent" type="search" placeholder="exact name" value=${filters.agent} onInput=${set("agent", true)} /></div>
      <div class="field"><label for="f-labels">Labels</label>
        <input id="f-labels" type="search" placeholder="key=value, …" value=${filters.labels} onInput=${set("labels", true)}
          aria-invalid=${typedLabelsWrong ? "true" : undefined} aria-describedby=${typedLabelsWrong ? "f-labels-problem" : undefined} />
        ${typedLabelsWrong ? html`<small id="f-labels-problem" class="field-error">${typedLabelsWrong}</small>` : null}</div>
      <button type="button" class="link" disabled=${!filters.state && !filters.agent && !filters.labels}
        onClick=${() => {
          const none = { state: "", agent: "", labels: "" };
          setFilters(none);
          setAsked(none);
          setPages([""]);
        }}>Clear filters</button>
    </form>
    <${ErrorBox} error=${error} />
    ${
      labelsWrong
        ? null
        : tasks === null
          ? error
            ? null
            : html`<p aria-busy="true">Loading tasks…</p>`
          : tasks.length === 0
            ? html`<p>No tasks${filtered ? " match these filters" : " yet"}.</p>`
            : html`<div class="table-wrap"><table class="tasks">
            <caption class="visually-hidden">Tasks${filtered ? " matching the filters" : ""}, newest first</caption>
            <thead><tr><th scope="col">Task</th><th scope="col">Agent</th><th scope="col">State</th><th scope="col">Progress</th><th scope="col">Labels</th><th scope="col">Created</th></tr></thead>
            <tbody>${tasks.map(
              // Keyed by id: when a new task arrives on top, a focused link stays on its own task.
              (t) => html`<tr key=${t.id}>
                <td><a href=${`#/tasks/${encodeURIComponent(t.id)}`}>${t.id}</a></td>
                <td>${t.agent}</td>
                <td><span class=${`state ${stateName(t.state)}`}>${stateName(t.state)}</span></td>
                <td>${t.progress ? html`<progress max="100" value=${t.progress.percent} aria-label="Progress"></progress>` : null}</td>
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
