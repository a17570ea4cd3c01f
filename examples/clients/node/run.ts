// An agentd client in TypeScript with the typed client (`agentd-server/client`):
// run and wait, answer an input request, watch with automatic resume, decoded errors.
// Usage: AGENTD_URL=http://127.0.0.1:8080 AGENTD_API_KEY=agentd_… npx tsx examples/clients/node/run.ts
import { AgentdError, createClient, jsonValue, TaskState } from "agentd-server/client";

const client = createClient({
  baseUrl: process.env.AGENTD_URL ?? "http://127.0.0.1:8080",
  key: process.env.AGENTD_API_KEY ?? "",
  transport: "grpc",
});
const say = (step: string, fields: Record<string, unknown>) =>
  console.log(JSON.stringify({ step, ...fields }, (_k, v) => (typeof v === "bigint" ? Number(v) : v)));

// Create a task and wait until it ends.
const done = await client.runAndWait({ agent: "simulate", input: { steps: 2 } });
say("run", { state: TaskState[done.state] });

// A task that asks: wait for the question, answer it, then watch it to the end.
const asking = await client.runAndWait(
  { agent: "simulate", input: { steps: 1, ask: [{ prompt: "Approve?", schema: { type: "boolean" } }] } },
  { until: "input_required" },
);
await client.tasks.provideInput({ taskId: asking.id, value: jsonValue(true), requestId: `approve-${asking.id}` });
const sequences: bigint[] = [];
for await (const event of client.watch(asking.id)) sequences.push(event.sequence);
say("watch", {
  prompt: asking.inputRequest?.prompt,
  sequences,
  state: TaskState[(await client.waitFor(asking.id)).state],
});

// Errors: code, reason and field violations.
try {
  await client.tasks.createTask({ agent: "simulate", input: jsonValue({ steps: "many" }) });
} catch (err) {
  if (!(err instanceof AgentdError)) throw err;
  say("error", { code: err.codeName, reason: err.reason, fieldViolations: err.fieldViolations });
}

client.close();
