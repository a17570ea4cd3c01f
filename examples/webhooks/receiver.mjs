// A webhook receiver for agentd: verifies each delivery (Standard Webhooks signature and
// timestamp), drops duplicates by webhook-id and prints one line per event.
// Install: npm i standardwebhooks. Run: AGENTD_WEBHOOK_SECRET=whsec_… PORT=8000 node receiver.mjs
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

const wh = new Webhook(process.env.AGENTD_WEBHOOK_SECRET ?? ""); // "whsec_…"
const port = Number(process.env.PORT ?? 8000);
const seen = new Set(); // webhook-ids already handled: keep them in your database in production

createServer((req, res) => {
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    let event;
    try {
      event = wh.verify(body, req.headers); // the raw body, before parsing it
    } catch {
      return res.writeHead(400).end(); // bad signature or stale timestamp
    }
    const id = req.headers["webhook-id"];
    if (!seen.has(id)) {
      seen.add(id);
      console.log(event.type, event.data.task.id, "sequence", event.data.sequence);
    }
    res.writeHead(204).end(); // answer at once; do the work afterwards
  });
}).listen(port, "127.0.0.1", () => console.log(`receiver listening on http://127.0.0.1:${port}/hook`));
