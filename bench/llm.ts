// LLM streaming benchmark (issue 9): the time agentd adds between an upstream chunk's arrival
// and the client's receipt of its text. A loopback OpenAI-compatible server (test/agents/
// fake-llm.ts) streams each chat's answer at a steady rate; the `chat` agent forwards the
// tokens as deltas; clients read them over gRPC (RunStream) and SSE. For every token:
// added = client receipt − the fake server's write of that token. Reported separately for the
// first token of a chat (must not wait out the 30 ms coalescing window) and later tokens.
//
//   npm run bench -- llm [--tokens 40] [--gap 20]
//
// Server, fake LLM and clients share one process (one clock); with DATABASE_URL the server
// uses a fresh Postgres database, else embedded PGlite. Two servers run side by side, rounds
// interleaved: group commit on (the default) and off (AGENTD_GROUP_COMMIT_ROWS=1), since every
// coalesced delta is a write before watchers see it.

import { loadavg } from "node:os";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { AgentService } from "../gen/agentd/v1/agent_service_pb.js";
import { TaskService } from "../gen/agentd/v1/task_service_pb.js";
import { startFakeLlm } from "../test/agents/fake-llm.js";
import { keyedGrpcTransport, numberArg, percentile, startBenchService } from "./support.js";

const TOKENS = numberArg("tokens", 40);
const GAP = numberArg("gap", 20);

const llm = await startFakeLlm();
// Each chat's prompt names it; its token write times are recorded under that name.
const writes = new Map<string, number[]>();
llm.respond = (req) => {
  const id = String(req.body.messages.at(-1)?.content);
  const times: number[] = [];
  writes.set(id, times);
  return {
    kind: "stream",
    gapMs: GAP,
    tokens: Array.from({ length: TOKENS }, (_, i) => `t${i} `),
    onToken: (i, at) => {
      times[i] = at;
    },
  };
};
const servers = await Promise.all(
  [
    ["on", 64],
    ["off", 1],
  ].map(async ([label, rows]) => {
    const bench = await startBenchService({
      llmBaseUrl: llm.baseUrl,
      llmModel: "bench",
      groupCommitRows: Number(rows),
    });
    const transport = keyedGrpcTransport(bench.url, bench.key);
    return {
      label: String(label),
      bench,
      agents: createClient(AgentService, transport),
      tasks: createClient(TaskService, transport),
    };
  }),
);
type Server = (typeof servers)[number];
const input = (id: string) => fromJson(ValueSchema, { prompt: id, tools: [] } as JsonValue);

/** Maps receipts of cumulative text to per-token receive times. */
function receiver() {
  let text = "";
  const received: number[] = [];
  return {
    received,
    onText(delta: string) {
      const at = performance.now();
      text += delta;
      const have = text.split(" ").length - 1; // tokens are "t<i> "
      for (let i = received.length; i < have; i++) received[i] = at;
    },
  };
}

async function grpcChat(server: Server, id: string): Promise<number[]> {
  const r = receiver();
  for await (const res of server.agents.runStream({ agent: "chat", input: input(id) })) {
    if (res.event?.event.case === "delta") r.onText(res.event.event.value.text);
  }
  return r.received;
}

async function sseChat(server: Server, id: string): Promise<number[]> {
  const r = receiver();
  const { task } = await server.tasks.createTask({ agent: "chat", input: input(id) });
  const res = await fetch(`${server.bench.url}/v1/tasks/${task!.id}/events`, {
    headers: { authorization: `Bearer ${server.bench.key}` },
  });
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let done = false;
    for (let at = buffer.indexOf("\n\n"); at >= 0; at = buffer.indexOf("\n\n")) {
      const data = buffer
        .slice(0, at)
        .split("\n")
        .find((l) => l.startsWith("data:"));
      buffer = buffer.slice(at + 2);
      if (!data) continue;
      const event = JSON.parse(data.slice(5)) as { delta?: { text: string }; stateChange?: { state: string } };
      if (event.delta) r.onText(event.delta.text);
      if (event.stateChange && /SUCCEEDED|FAILED|CANCELED/.test(event.stateChange.state)) done = true;
    }
    if (done) break;
  }
  return r.received;
}

const rows: string[] = [];
let n = 0;
for (const [protocol, chat] of [
  ["gRPC", grpcChat],
  ["SSE", sseChat],
] as const) {
  for (const concurrency of [1, 20]) {
    const first = new Map(servers.map((server) => [server, [] as number[]]));
    const later = new Map(servers.map((server) => [server, [] as number[]]));
    // Three rounds, the first a warm-up; in each, the servers one after the other.
    for (let round = 0; round < 3; round++) {
      for (const server of servers) {
        const ids = Array.from({ length: concurrency }, () => `chat-${n++}`);
        const results = await Promise.all(ids.map((id) => chat(server, id)));
        if (round === 0) continue;
        ids.forEach((id, k) => {
          const w = writes.get(id)!;
          results[k]!.forEach((at, i) => {
            (i === 0 ? first : later).get(server)!.push(at - w[i]!);
          });
        });
      }
    }
    for (const server of servers) {
      const f1 = first.get(server)!.sort((a, b) => a - b);
      const l1 = later.get(server)!.sort((a, b) => a - b);
      const f = (x: number) => x.toFixed(1);
      rows.push(
        `| ${protocol} | ${server.label} | ${concurrency} | ${f(percentile(f1, 50))} | ${f(percentile(f1, 99))} | ${f(percentile(l1, 50))} | ${f(percentile(l1, 99))} | ${f1.length + l1.length} |`,
      );
      console.error(rows.at(-1));
    }
  }
}
console.log(
  [
    `LLM streaming: ${TOKENS} tokens per chat, one every ${GAP} ms; ${servers[0]!.bench.mode} database; load average ${loadavg()[0]!.toFixed(1)}; added latency in ms (upstream write → client receipt)`,
    "",
    "| protocol | group commit | concurrent chats | first token p50 | first token p99 | later tokens p50 | later tokens p99 | tokens |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n"),
);
for (const server of servers) await server.bench.close();
await llm.close();
