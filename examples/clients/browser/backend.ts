// The backend of the browser example: it holds the API key, creates a `simulate` task, mints an
// access token that can only read that task, and serves a page (bundled from page.ts with esbuild
// at start) plus `/session` = {url, taskId, otherTaskId, token}. The key never reaches the page.
// Usage: AGENTD_URL=http://127.0.0.1:8080 AGENTD_API_KEY=agentd_… npx tsx examples/clients/browser/backend.ts
// (PORT: its own port, default 8090; the page's origin must be allowed by agentd's CORS settings.)
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient, jsonValue } from "agentd-server/client";
import { build } from "esbuild";

const url = process.env.AGENTD_URL ?? "http://127.0.0.1:8080";
const client = createClient({ baseUrl: url, key: process.env.AGENTD_API_KEY ?? "", transport: "connect-http1" });

// The task the page watches: a few steps, then streamed text.
const { task } = await client.tasks.createTask({
  agent: "simulate",
  input: jsonValue({ steps: 3, step_delay_ms: 300, deltas: 4, delta_rate: 10 }),
});
// Another task of the same tenant, which the page's token must not see.
const { task: other } = await client.tasks.createTask({ agent: "simulate", input: jsonValue({ steps: 1 }) });
const { accessToken } = await client.auth.createAccessToken({
  scopes: ["tasks:read"],
  taskIds: [task!.id],
  ttl: durationFromMs(15 * 60_000),
});
const session = JSON.stringify({ url, taskId: task!.id, otherTaskId: other!.id, token: accessToken });

const bundle = await build({
  entryPoints: [new URL("./page.ts", import.meta.url).pathname],
  bundle: true,
  format: "esm",
  platform: "browser", // resolves agentd-server/client to its browser entry
  target: "es2022",
  write: false,
  logLevel: "warning",
});
const js = bundle.outputFiles[0]!.contents;
const html = `<!doctype html><meta charset="utf-8"><title>agentd browser example</title>
<h1>Task <code id="task"></code></h1>
<p>State: <strong id="state">connecting…</strong></p>
<pre id="output"></pre>
<ol id="events"></ol>
<p>Another task with the same token: <strong id="other">…</strong></p>
<script type="module" src="/page.js"></script>`;

const server = createServer((req, res) => {
  if (req.url === "/session")
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(session);
  else if (req.url === "/page.js") res.writeHead(200, { "content-type": "text/javascript" }).end(js);
  else if (req.url === "/") res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
  else res.writeHead(404).end();
});
server.listen(Number(process.env.PORT ?? 8090), "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  console.log(JSON.stringify({ page: `http://127.0.0.1:${port}/`, taskId: task!.id }));
});
const stop = () => {
  client.close();
  server.close();
  server.closeAllConnections();
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
