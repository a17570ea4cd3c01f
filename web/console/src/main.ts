// The agentd web console: sign-in, agents, tasks, a live task view and webhooks, routed by the
// URL hash (#/agents, #/tasks/<id>, …) so the server serves one page at /.
import { html, render } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, credential, describeError, onCredentialRefused, type ShownError } from "./api.js";
import "./style.css";
import { ErrorBox, setSignOut, signOut } from "./ui.js";
import { AgentsView } from "./views/agents.js";
import { TaskView } from "./views/task.js";
import { TasksView } from "./views/tasks.js";
import { WebhooksView } from "./views/webhooks.js";

interface Route {
  /** The path in the hash, e.g. ["tasks", "<id>"]. */
  parts: string[];
  /** The query after it, e.g. the task list's filters (#/tasks?state=running). */
  query: URLSearchParams;
  /** Counts hash changes: a view keyed by it starts afresh when the user navigates. */
  seq: number;
}

let navigations = 0;
function currentRoute(): Route {
  const [path = "", query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p; // a hand-edited URL with a stray %: shown as typed, never a blank page
    }
  });
  return { parts, query: new URLSearchParams(query), seq: navigations++ };
}

const TITLES: Record<string, string> = { agents: "Agents", tasks: "Tasks", webhooks: "Webhooks" };

function SignIn(props: { notice: string; onDone: () => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<ShownError | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  // `autofocus` works once per page load: after signing out, focus is put here by hand.
  useEffect(() => input.current?.focus(), []);
  const submit = async (e: Event) => {
    e.preventDefault();
    const token = value.trim();
    if (!token) return;
    setBusy(true);
    credential.set(token);
    try {
      // Any call proves the credential; a token limited to tasks may lack agents:read, which is fine.
      await api.agents.listAgents({ pageSize: 1 });
      props.onDone();
    } catch (err) {
      const shown = describeError(err);
      if (shown.code === "PERMISSION_DENIED") props.onDone();
      else {
        credential.clear();
        setError(shown);
      }
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>agentd console</h1>
    ${props.notice ? html`<p class="notice" role="alert">${props.notice}</p>` : null}
    <form onSubmit=${submit}>
      <label for="credential">API key or access token</label>
      <input id="credential" name="credential" type="password" autocomplete="off" ref=${input} value=${value}
        onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)} />
      <small class="hint">Kept in this tab's session storage only; sent as <code>authorization: Bearer …</code>.</small>
      <button class="primary" type="submit" disabled=${busy}>Sign in</button>
    </form>
    ${error ? html`<${ErrorBox} error=${error} />` : null}
  </main>`;
}

function App() {
  const [signedIn, setSignedIn] = useState(credential.get() !== null);
  const [notice, setNotice] = useState("");
  const [route, setRoute] = useState(currentRoute);
  const main = useRef<HTMLElement>(null);
  useEffect(() => {
    const update = () => setRoute(currentRoute());
    addEventListener("hashchange", update);
    return () => removeEventListener("hashchange", update);
  }, []);
  setSignOut((message: string) => {
    credential.clear();
    setNotice(message);
    setSignedIn(false);
  });
  useEffect(
    () =>
      onCredentialRefused((e) =>
        signOut(`Signed out: ${describeError(e).message || "the credential was refused"} (UNAUTHENTICATED).`),
      ),
    [],
  );

  const [section = "tasks", id] = route.parts;
  // On navigation (and after signing in) keyboard and screen-reader users start at the new view,
  // not at a link that is gone; the first load leaves focus where the browser puts it.
  const first = useRef(true);
  useEffect(() => {
    document.title = `${id ? `Task ${id.slice(0, 8)}` : (TITLES[section] ?? "Tasks")} · agentd console`;
    if (first.current) first.current = false;
    else main.current?.focus({ preventScroll: false });
  }, [route.seq, signedIn]);

  if (!signedIn)
    return html`<${SignIn} notice=${notice} onDone=${() => {
      setNotice("");
      setSignedIn(true);
    }} />`;
  const nav = (name: string, label: string) =>
    html`<a href=${`#/${name}`} aria-current=${section === name ? "page" : undefined}>${label}</a>`;
  let view: unknown;
  if (section === "agents") view = html`<${AgentsView} name=${id} />`;
  else if (section === "tasks" && id) view = html`<${TaskView} key=${id} id=${id} />`;
  else if (section === "webhooks") view = html`<${WebhooksView} />`;
  else view = html`<${TasksView} key=${route.seq} query=${route.query} />`;
  return html`<header>
      <span class="brand">agentd</span>
      <nav>${nav("agents", "Agents")}${nav("tasks", "Tasks")}${nav("webhooks", "Webhooks")}</nav>
      <button type="button" class="link" onClick=${() => signOut("Signed out.")}>Sign out</button>
    </header>
    <main ref=${main} tabindex="-1">${view}</main>`;
}

const root = document.getElementById("app")!;
root.textContent = "";
render(html`<${App} />`, root);
