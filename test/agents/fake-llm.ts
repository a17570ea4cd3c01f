// A small OpenAI-compatible Chat Completions server for tests and the LLM benchmark, on
// loopback port 0. It speaks the real wire format: `POST /v1/chat/completions` with
// `stream: true` answers `text/event-stream` with `data: {chat.completion.chunk}` lines,
// tool-call deltas split across chunks, a usage chunk and `data: [DONE]`; without it, one
// `chat.completion` JSON body (what simple clients such as examples/agents ask for); errors are JSON
// bodies `{"error": {message, type, code}}` with their HTTP status. What it answers is
// scripted per request by the test.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ToolCallScript {
  id: string;
  name: string;
  arguments: string;
}

export type Reply =
  /** Streams `tokens` as content deltas (then `toolCalls`, split in pieces), `gapMs` apart. */
  | {
      kind: "stream";
      tokens?: string[];
      toolCalls?: ToolCallScript[];
      gapMs?: number;
      finishReason?: string;
      /** Destroy the connection after this many content tokens, with no finish and no [DONE]. */
      cutAfter?: number;
      /** After this many content tokens, send `data: <line>` (an error object, garbage) and end the stream. */
      breakWith?: { after: number; line: string };
      /** Send the tool calls' argument pieces round-robin across calls rather than call by call. */
      interleaveToolCalls?: boolean;
      /** Called with each token's write time (ms, performance.now()) — for the benchmark. */
      onToken?: (index: number, at: number) => void;
    }
  | { kind: "error"; status: number; message: string; headers?: Record<string, string> }
  /** Accepts the request and never answers. */
  | { kind: "hang" };

export interface SeenRequest {
  body: {
    model: string;
    stream?: boolean;
    messages: { role: string; content: string | null; tool_calls?: unknown[]; tool_call_id?: string }[];
    tools?: { function: { name: string } }[];
    [k: string]: unknown;
  };
  authorization: string | undefined;
  /** Resolves when the client's connection for this request closed (before or after the answer ended). */
  closed: Promise<void>;
  /** True once the answer was written completely. */
  finished: boolean;
}

export interface FakeLlm {
  /** Base URL to configure, ending in /v1. */
  baseUrl: string;
  requests: SeenRequest[];
  /** Decides each answer; by default a short streamed greeting. */
  respond: (req: SeenRequest, index: number) => Reply;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Splits `text` into word-ish tokens, keeping spaces ("Hello", " world", "."). */
export function tokensOf(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [];
}

export async function startFakeLlm(): Promise<FakeLlm> {
  const sockets = new Set<import("node:net").Socket>();
  const fake: FakeLlm = {
    baseUrl: "",
    requests: [],
    respond: () => ({ kind: "stream", tokens: tokensOf("Hello from the fake model.") }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  async function answer(req: IncomingMessage, res: ServerResponse, seen: SeenRequest, reply: Reply) {
    if (reply.kind === "hang") return;
    if (reply.kind === "error") {
      res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers });
      res.end(JSON.stringify({ error: { message: reply.message, type: "test_error", code: null } }));
      seen.finished = true;
      return;
    }
    const id = `chatcmpl-${fake.requests.length}`;
    const created = Math.floor(Date.now() / 1000);
    if (seen.body.stream !== true) {
      // Without `stream: true` the answer is one `chat.completion` JSON body, as real servers send it.
      const tokens = reply.tokens ?? [];
      const calls = reply.toolCalls ?? [];
      const message = {
        role: "assistant",
        content: calls.length > 0 && tokens.length === 0 ? null : tokens.join(""),
        ...(calls.length > 0
          ? {
              tool_calls: calls.map((c) => ({
                id: c.id,
                type: "function",
                function: { name: c.name, arguments: c.arguments },
              })),
            }
          : {}),
      };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          id,
          object: "chat.completion",
          created,
          model: seen.body.model,
          choices: [{ index: 0, message, finish_reason: reply.finishReason ?? (calls.length ? "tool_calls" : "stop") }],
          usage: { prompt_tokens: 10, completion_tokens: tokens.length, total_tokens: 10 + tokens.length },
        }),
      );
      seen.finished = true;
      return;
    }
    const chunk = (delta: object, finish: string | null = null, usage?: object) =>
      `data: ${JSON.stringify({
        id,
        object: "chat.completion.chunk",
        created,
        model: seen.body.model,
        choices: usage ? [] : [{ index: 0, delta, finish_reason: finish }],
        ...(usage ? { usage } : {}),
      })}\n\n`;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.flushHeaders();
    const gap = reply.gapMs ?? 0;
    let aborted = false;
    req.socket.once("close", () => {
      aborted = true;
    });
    res.write(chunk({ role: "assistant", content: "" }));
    const tokens = reply.tokens ?? [];
    for (let i = 0; i < tokens.length; i++) {
      if (gap > 0) await sleep(gap);
      if (aborted) return;
      if (reply.cutAfter !== undefined && i >= reply.cutAfter) {
        req.socket.destroy();
        return;
      }
      if (reply.breakWith && i >= reply.breakWith.after) {
        res.end(`data: ${reply.breakWith.line}\n\n`);
        seen.finished = true;
        return;
      }
      res.write(chunk({ content: tokens[i] }));
      reply.onToken?.(i, performance.now());
    }
    // Tool calls: the first piece of each carries index, id, type and name; the arguments
    // follow in three pieces, in separate chunks, as real servers send them.
    const calls = reply.toolCalls ?? [];
    const header = (index: number) => {
      const call = calls[index]!;
      res.write(
        chunk({ tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }] }),
      );
    };
    const piece = (index: number, p: number) => {
      const a = calls[index]!.arguments;
      const cuts = [0, Math.floor(a.length / 3), Math.floor((2 * a.length) / 3), a.length];
      res.write(chunk({ tool_calls: [{ index, function: { arguments: a.slice(cuts[p], cuts[p + 1]) } }] }));
    };
    if (reply.interleaveToolCalls) {
      for (let index = 0; index < calls.length; index++) header(index);
      for (let p = 0; p < 3; p++) for (let index = 0; index < calls.length; index++) piece(index, p);
    } else {
      for (let index = 0; index < calls.length; index++) {
        header(index);
        for (let p = 0; p < 3; p++) piece(index, p);
      }
    }
    const finish = reply.finishReason ?? (reply.toolCalls?.length ? "tool_calls" : "stop");
    res.write(chunk({}, finish));
    res.write(
      chunk({}, null, { prompt_tokens: 10, completion_tokens: tokens.length, total_tokens: 10 + tokens.length }),
    );
    res.write("data: [DONE]\n\n");
    res.end();
    seen.finished = true;
  }

  const server: Server = createServer((req, res) => {
    let raw = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (raw += c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
        res
          .writeHead(404, { "content-type": "application/json" })
          .end(JSON.stringify({ error: { message: "not found" } }));
        return;
      }
      const seen: SeenRequest = {
        body: JSON.parse(raw) as SeenRequest["body"],
        authorization: req.headers.authorization,
        closed: new Promise<void>((resolve) => req.socket.once("close", () => resolve())),
        finished: false,
      };
      fake.requests.push(seen);
      void answer(req, res, seen, fake.respond(seen, fake.requests.length - 1)).catch(() => req.socket.destroy());
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  fake.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return fake;
}
