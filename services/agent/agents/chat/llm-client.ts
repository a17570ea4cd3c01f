// One streamed Chat Completions call to an OpenAI-compatible server (OpenAI, Ollama, vLLM,
// llama.cpp, LM Studio…), through the official `openai` package: it owns the wire format and
// the SSE parsing. We keep retries (429/5xx, honouring Retry-After, cut short by the task's
// signal) and the mapping of failures to TaskError codes, so both are ours to reason about.
//
// The API key goes into the Authorization header and nowhere else: no error message, log
// line, event or cause carries it or the upstream's echo of it.
import OpenAI from "openai";
import type { ChatCompletionChunk, ChatCompletionCreateParamsStreaming } from "openai/resources/chat/completions";
import { sleep } from "../abortable.js";
import { AgentFailure } from "../agent.js";

export interface LlmSettings {
  /** e.g. http://127.0.0.1:11434/v1 */
  baseUrl: string;
  apiKey?: string | undefined;
  model: string;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string | null;
  tool_calls?: ToolCallRequest[];
  tool_call_id?: string;
}

export interface ToolCallRequest {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface ToolSpec {
  type: "function";
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

interface CompletionRequest {
  messages: ChatMessage[];
  tools?: ToolSpec[];
  temperature?: number;
  maxTokens?: number;
}

interface Completion {
  content: string;
  toolCalls: ToolCallRequest[];
  finishReason: string;
  usage: { prompt_tokens: number; completion_tokens: number } | undefined;
}

export interface LlmClient {
  /** Streams one completion; `onText` gets each content delta as it arrives. */
  complete(
    request: CompletionRequest,
    opts: { signal: AbortSignal; onText: (text: string) => void },
  ): Promise<Completion>;
}

export interface RetryPolicy {
  /** Retries after a 429 or 5xx (or a connection failure) before giving up. */
  maxRetries: number;
  /** First backoff; doubles per retry (±20 % jitter) when the server gives no Retry-After. */
  baseDelayMs: number;
  /** A Retry-After longer than this is not waited for: the task fails (retryable) at once. */
  maxDelayMs: number;
}

const DEFAULT_RETRY: RetryPolicy = { maxRetries: 4, baseDelayMs: 500, maxDelayMs: 30_000 };

/** The client without an Authorization header when no key is configured (local servers). The
 * `openai` package insists on some credential (7.x throws "Missing credentials" without one, and
 * would otherwise read OPENAI_API_KEY from the environment, a key meant for someone else): without
 * a key it gets a placeholder that is never sent, and the header is explicitly omitted. */
class Upstream extends OpenAI {
  constructor(
    options: ConstructorParameters<typeof OpenAI>[0],
    private readonly sendsKey: boolean,
  ) {
    super(options);
  }

  protected override async authHeaders(opts: Parameters<OpenAI["authHeaders"]>[0]) {
    return this.sendsKey ? super.authHeaders(opts) : undefined;
  }
}

const NO_KEY = "agentd-no-api-key-configured";

/** Milliseconds the server asked us to wait (`retry-after-ms`, `retry-after` seconds or date). */
function retryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  const ms = Number(headers?.get("retry-after-ms") ?? Number.NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const raw = headers?.get("retry-after");
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Text from the upstream, safe to show: the key (and anything shaped like one) removed, shortened. */
function scrub(text: string, apiKey: string | undefined): string {
  let out = apiKey ? text.split(apiKey).join("[redacted]") : text;
  out = out.replace(/\b(sk|key|token)[-_][A-Za-z0-9_*-]{6,}/gi, "[redacted]");
  return out.length > 300 ? `${out.slice(0, 297)}...` : out;
}

class RetryableUpstream extends Error {
  constructor(
    readonly failure: AgentFailure,
    readonly waitMs: number | undefined,
  ) {
    super(failure.message);
  }
}

export function createLlmClient(settings: LlmSettings, retry: Partial<RetryPolicy> = {}): LlmClient {
  const policy = { ...DEFAULT_RETRY, ...retry };
  const sendsKey = Boolean(settings.apiKey);
  const client = new Upstream(
    {
      baseURL: settings.baseUrl,
      apiKey: settings.apiKey || NO_KEY,
      ...(sendsKey ? {} : { defaultHeaders: { authorization: null } }),
      maxRetries: 0, // ours, below
      timeout: 24 * 3600 * 1000, // the task's timeout (its signal) bounds the call instead
      logLevel: "off",
    },
    sendsKey,
  );

  return {
    async complete(request, { signal, onText }) {
      for (let attempt = 0; ; attempt++) {
        let streamed = false;
        try {
          const stream = await client.chat.completions.create(requestBody(settings.model, request), { signal });
          return await readStream(stream as AsyncIterable<ChatCompletionChunk>, signal, (text) => {
            streamed = true;
            onText(text);
          });
        } catch (err) {
          const outcome = classify(err, signal, settings.apiKey);
          // Text already streamed to watchers cannot be taken back: a retry would repeat it.
          if (!(outcome instanceof RetryableUpstream)) throw outcome;
          if (streamed || attempt >= policy.maxRetries) throw outcome.failure;
          const backoff = policy.baseDelayMs * 2 ** attempt * (0.8 + Math.random() * 0.4);
          const wait = outcome.waitMs ?? backoff;
          if (wait > policy.maxDelayMs) throw outcome.failure;
          await sleep(wait, signal);
        }
      }
    },
  };
}

/** The streamed Chat Completions body for one request; optional fields only when set. */
function requestBody(model: string, request: CompletionRequest): ChatCompletionCreateParamsStreaming {
  return {
    model,
    messages: request.messages as ChatCompletionCreateParamsStreaming["messages"],
    stream: true,
    stream_options: { include_usage: true },
    ...(request.tools && request.tools.length > 0 ? { tools: request.tools } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
  };
}

/** Reads one stream to its end: content deltas go to `onText` as they arrive, tool-call deltas are assembled. */
async function readStream(
  stream: AsyncIterable<ChatCompletionChunk>,
  signal: AbortSignal,
  onText: (text: string) => void,
): Promise<Completion> {
  let content = "";
  let finishReason: string | undefined;
  let usage: Completion["usage"];
  // Tool calls arrive in pieces: the first delta of a call has its index, id and name, later
  // ones append to its arguments. Assemble by index.
  const calls = new Map<number, ToolCallRequest>();
  let sawChunk = false;
  for await (const chunk of stream) {
    sawChunk = true;
    if (chunk.usage)
      usage = { prompt_tokens: chunk.usage.prompt_tokens ?? 0, completion_tokens: chunk.usage.completion_tokens ?? 0 };
    const choice = chunk.choices?.[0];
    if (!choice) continue;
    const delta = choice.delta ?? {};
    if (typeof delta.content === "string" && delta.content !== "") {
      content += delta.content;
      onText(delta.content);
    }
    for (const part of delta.tool_calls ?? []) {
      const index = part.index ?? 0;
      let call = calls.get(index);
      if (!call) {
        call = { id: part.id ?? "", type: "function", function: { name: "", arguments: "" } };
        calls.set(index, call);
      }
      if (part.id) call.id = part.id;
      if (part.function?.name) call.function.name += part.function.name;
      if (part.function?.arguments) call.function.arguments += part.function.arguments;
    }
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  // The SDK ends quietly when aborted, and when the body ends without `[DONE]`.
  signal.throwIfAborted();
  if (!sawChunk || finishReason === undefined) {
    throw new AgentFailure("UPSTREAM_BAD_RESPONSE", "the LLM server's stream ended before the answer was complete", {
      retryable: true,
    });
  }
  const toolCalls = [...calls.entries()].sort(([a], [b]) => a - b).map(([i, c]) => ({ ...c, id: c.id || `call_${i}` }));
  if (toolCalls.some((c) => c.function.name === "")) {
    throw new AgentFailure("UPSTREAM_BAD_RESPONSE", "the LLM server sent a tool call without a function name", {
      retryable: false,
    });
  }
  return { content, toolCalls, finishReason, usage };
}

/** Maps what the SDK threw to a TaskError; RetryableUpstream when another try may succeed. */
function classify(err: unknown, signal: AbortSignal, apiKey: string | undefined): Error {
  if (signal.aborted) return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
  if (err instanceof AgentFailure) return err;
  if (err instanceof OpenAI.APIConnectionError) {
    return new RetryableUpstream(
      new AgentFailure("UPSTREAM_ERROR", "could not reach the LLM server (connection failed or was cut)", {
        retryable: true,
      }),
      undefined,
    );
  }
  if (err instanceof OpenAI.APIError && err.status !== undefined) {
    const status = err.status;
    const details = { status };
    if (status === 401 || status === 403) {
      return new AgentFailure(
        "UPSTREAM_UNAUTHORIZED",
        `the LLM server refused the credentials (HTTP ${status}); check AGENTD_LLM_API_KEY`,
        {
          retryable: false,
          details,
        },
      );
    }
    const wait = retryAfterMs(err.headers);
    if (status === 429) {
      const failure = new AgentFailure("UPSTREAM_RATE_LIMITED", "the LLM server is rate limiting requests (HTTP 429)", {
        retryable: true,
        details: wait === undefined ? details : { ...details, retry_after_ms: wait },
      });
      return new RetryableUpstream(failure, wait);
    }
    const said = scrub(err.message, apiKey);
    if (status >= 500 || status === 408) {
      return new RetryableUpstream(
        new AgentFailure("UPSTREAM_ERROR", `the LLM server failed (HTTP ${status}): ${said}`, {
          retryable: true,
          details,
        }),
        wait,
      );
    }
    return new AgentFailure("UPSTREAM_ERROR", `the LLM server rejected the request (HTTP ${status}): ${said}`, {
      retryable: false,
      details,
    });
  }
  if (err instanceof OpenAI.APIError) {
    // An error object inside the stream (status undefined).
    return new AgentFailure(
      "UPSTREAM_ERROR",
      `the LLM server reported an error mid-stream: ${scrub(err.message, apiKey)}`,
      {
        retryable: true,
      },
    );
  }
  if (err instanceof SyntaxError) {
    return new AgentFailure("UPSTREAM_BAD_RESPONSE", "the LLM server sent a stream chunk that is not JSON", {
      retryable: false,
    });
  }
  // undici reports a connection cut mid-body as TypeError("terminated").
  return new AgentFailure("UPSTREAM_BAD_RESPONSE", "the LLM server's stream broke off before the answer was complete", {
    retryable: true,
  });
}
