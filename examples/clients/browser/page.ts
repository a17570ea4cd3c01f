// The page of the browser example (bundled by backend.ts): it gets an access token from its
// backend, watches its task with the typed client over Connect-Web, and shows that the same
// token cannot read another task (NOT_FOUND).
import { createConnectTransport } from "@connectrpc/connect-web";
import { AgentdError, createBrowserClient, type TaskEvent, TaskState } from "agentd-server/client";

// The few DOM calls used here (the repository type-checks without the DOM library).
interface El {
  textContent: string | null;
  append(...nodes: El[]): void;
}
const doc = (globalThis as unknown as { document: { getElementById(id: string): El; createElement(tag: string): El } })
  .document;
const el = (id: string) => doc.getElementById(id);

const session = (await (await fetch("/session")).json()) as {
  url: string;
  taskId: string;
  otherTaskId: string;
  token: string;
};
const client = createBrowserClient({
  token: session.token,
  makeTransport: (interceptors) => createConnectTransport({ baseUrl: session.url, interceptors }),
});

function describe(event: TaskEvent): string {
  const e = event.event;
  switch (e.case) {
    case "stateChange":
      return `state ${TaskState[e.value.state]}`;
    case "progress":
      return `progress ${e.value.step}/${e.value.totalSteps}`;
    case "delta":
      return `delta ${JSON.stringify(e.value.text)}`;
    default:
      return e.case ?? "event";
  }
}

el("task").textContent = session.taskId;
let state = "";
try {
  // Resumes by itself after a dropped connection; ends after the terminal event.
  for await (const event of client.watch(session.taskId)) {
    const item = doc.createElement("li");
    item.textContent = `#${event.sequence} ${describe(event)}`;
    el("events").append(item);
    if (event.event.case === "delta") el("output").textContent += event.event.value.text;
    if (event.event.case === "stateChange") el("state").textContent = state = TaskState[event.event.value.state] ?? "";
  }
  const { task } = await client.tasks.getTask({ taskId: session.taskId });
  el("state").textContent = TaskState[task!.state] ?? state;
} catch (err) {
  el("state").textContent = `error: ${err instanceof AgentdError ? err.codeName : String(err)}`;
}

try {
  await client.tasks.getTask({ taskId: session.otherTaskId });
  el("other").textContent = "readable (unexpected)";
} catch (err) {
  el("other").textContent =
    err instanceof AgentdError
      ? `${err.codeName.toUpperCase()}${err.reason ? ` (${err.reason})` : ""}: ${err.rawMessage}`
      : String(err);
}
