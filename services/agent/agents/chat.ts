// Built-in agent `chat`: a language model behind any OpenAI-compatible Chat Completions server.
// Streams the reply as deltas, lets the model call tools (the calculator and `callable`
// agents) through ctx.tool, and — with `conversation: true` — asks for the next user message
// with ctx.requestInput, keeping the history in its checkpoint: no process waits while the
// human thinks, and a restart between turns loses nothing.
import { type AgentContext, type AgentDefinition, AgentFailure, type Json } from "./agent.js";
import { type Tool, ToolError, toolsFor } from "./chat/agent-tools.js";
import {
  type ChatMessage,
  createLlmClient,
  type LlmClient,
  type LlmSettings,
  type RetryPolicy,
  type ToolCallRequest,
} from "./chat/llm-client.js";
import type { AgentRegistry } from "./registry.js";

export interface ChatInput {
  prompt?: string;
  messages?: { role: "system" | "user" | "assistant"; content: string }[];
  system?: string;
  temperature?: number;
  max_tokens?: number;
  tools?: string[];
  conversation?: boolean;
}

export interface ChatOutput {
  reply: string;
  messages: ChatMessage[];
  finish_reason: string;
  usage: { prompt_tokens: number; completion_tokens: number };
  turns: number;
}

/** What `chat` checkpoints: the history, and whether it is waiting for the next user message. */
interface ChatState {
  messages: ChatMessage[];
  usage: { prompt_tokens: number; completion_tokens: number };
  /** Tool rounds in the current turn. */
  rounds: number;
  turns: number;
  awaiting?: { reply: string; finish_reason: string };
}

const MAX_TEXT = 200_000;

const inputSchema: Json = {
  type: "object",
  properties: {
    prompt: {
      type: "string",
      minLength: 1,
      maxLength: MAX_TEXT,
      description: "A single user message (appended after `messages`).",
    },
    messages: {
      type: "array",
      maxItems: 1000,
      description: "The conversation so far.",
      items: {
        type: "object",
        properties: {
          role: { type: "string", enum: ["system", "user", "assistant"] },
          content: { type: "string", maxLength: MAX_TEXT },
        },
        required: ["role", "content"],
        additionalProperties: false,
      },
    },
    system: { type: "string", maxLength: MAX_TEXT, description: "A system message put first." },
    temperature: { type: "number", minimum: 0, maximum: 2 },
    max_tokens: { type: "integer", minimum: 1, maximum: 1_000_000 },
    tools: {
      type: "array",
      maxItems: 64,
      uniqueItems: true,
      items: { type: "string", minLength: 1, maxLength: 64 },
      description:
        "Tools the model may call (default: all on offer — the calculator and every callable agent; [] for none).",
    },
    conversation: {
      type: "boolean",
      default: false,
      description: "After each reply, ask for the next user message ({message} or {done: true}) instead of ending.",
    },
  },
  anyOf: [
    { type: "object", properties: { prompt: true }, required: ["prompt"] },
    { type: "object", properties: { messages: true }, required: ["messages"] },
  ],
  additionalProperties: false,
};

const messageSchema: Json = {
  type: "object",
  properties: {
    role: { type: "string", enum: ["system", "user", "assistant", "tool"] },
    content: { type: ["string", "null"] },
    tool_calls: {
      type: "array",
      items: {
        type: "object",
        properties: {
          id: { type: "string" },
          type: { type: "string", const: "function" },
          function: {
            type: "object",
            properties: { name: { type: "string" }, arguments: { type: "string" } },
            required: ["name", "arguments"],
          },
        },
        required: ["id", "type", "function"],
      },
    },
    tool_call_id: { type: "string" },
  },
  required: ["role", "content"],
};

const outputSchema: Json = {
  type: "object",
  properties: {
    reply: { type: "string", description: "The model's last answer." },
    messages: {
      type: "array",
      items: messageSchema,
      description: "The whole conversation, tool calls and results included.",
    },
    finish_reason: { type: "string", description: "Why the model stopped: stop, length, content_filter…" },
    usage: {
      type: "object",
      properties: {
        prompt_tokens: { type: "integer", minimum: 0 },
        completion_tokens: { type: "integer", minimum: 0 },
      },
      required: ["prompt_tokens", "completion_tokens"],
    },
    turns: { type: "integer", minimum: 1, description: "Replies given (one per user message)." },
  },
  required: ["reply", "messages", "finish_reason", "usage", "turns"],
  additionalProperties: false,
};

/** The answer schema of the "next message" question. */
const NEXT_MESSAGE: Json = {
  type: "object",
  properties: {
    message: { type: "string", minLength: 1, maxLength: MAX_TEXT, description: "The next user message." },
    done: { type: "boolean", const: true, description: "true ends the conversation." },
  },
  // {message} goes on, {done: true} ends; {} or {done: false} alone would be neither.
  anyOf: [
    { type: "object", properties: { message: true }, required: ["message"] },
    { type: "object", properties: { done: true }, required: ["done"] },
  ],
  additionalProperties: false,
};

export interface ChatAgentOptions {
  /** Unset: the agent is listed as unavailable and cannot be run. */
  llm: LlmSettings | undefined;
  /** Model responses asking for tools allowed in a row before the task fails (default 8). */
  maxToolRounds?: number;
  /** The replica's agents, for tools (read at run time: the registry is built after this agent). */
  agents?: () => AgentRegistry | undefined;
  retry?: Partial<RetryPolicy>;
}

function firstMessages(input: ChatInput): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (input.system !== undefined) messages.push({ role: "system", content: input.system });
  for (const m of input.messages ?? []) messages.push({ role: m.role, content: m.content });
  if (input.prompt !== undefined) messages.push({ role: "user", content: input.prompt });
  return messages;
}

/** Runs one tool call through ctx.tool (so it is recorded); returns the content for the model. */
async function callTool(call: ToolCallRequest, byName: Map<string, Tool>, ctx: AgentContext): Promise<string> {
  let args: Json;
  let parsed = true;
  try {
    args = JSON.parse(call.function.arguments === "" ? "{}" : call.function.arguments) as Json;
  } catch {
    args = call.function.arguments;
    parsed = false;
  }
  try {
    const result = await ctx.tool(call.function.name, args, () => {
      const tool = byName.get(call.function.name);
      if (!tool) throw new ToolError(`there is no tool named "${call.function.name}"`);
      if (!parsed) throw new ToolError("the arguments are not valid JSON");
      return tool.run(args, ctx);
    });
    return JSON.stringify(result);
  } catch (err) {
    // The model hears about a failed tool and may try again; anything else (abort, lost lease) ends the run.
    if (err instanceof ToolError && !ctx.signal.aborted) return JSON.stringify({ error: err.message });
    throw err;
  }
}

export function createChatAgent(opts: ChatAgentOptions): AgentDefinition<ChatInput, ChatOutput> {
  const maxToolRounds = opts.maxToolRounds ?? 8;
  const llm: LlmClient | undefined = opts.llm ? createLlmClient(opts.llm, opts.retry) : undefined;
  return {
    name: "chat",
    version: "1.0.0",
    description:
      "Chats with a language model on any OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp, LM Studio): " +
      "streams the reply, lets the model call tools (a calculator and callable agents), and holds multi-turn conversations.",
    inputSchema,
    outputSchema,
    capabilities: ["streaming", "tools", "input", "checkpoints"],
    ...(opts.llm
      ? {}
      : { unavailableReason: "no LLM server is configured: set AGENTD_LLM_BASE_URL and AGENTD_LLM_MODEL" }),
    async run(input, ctx) {
      if (!llm)
        throw new AgentFailure("AGENT_UNAVAILABLE", "no LLM server is configured on this runner", { retryable: true });
      const { tools, unknown } = toolsFor(opts.agents?.(), "chat", input.tools);
      if (unknown.length > 0) {
        throw new AgentFailure("UNKNOWN_TOOL", `no such tool: ${unknown.join(", ")}`, { retryable: false });
      }
      const byName = new Map(tools.map((t) => [t.name, t]));
      const saved = ctx.savedState as unknown as ChatState | undefined;
      const state: ChatState = saved
        ? structuredClone(saved)
        : { messages: firstMessages(input), usage: { prompt_tokens: 0, completion_tokens: 0 }, rounds: 0, turns: 0 };
      const save = () => ctx.checkpoint(state as unknown as Json);
      const output = (reply: string, finish: string): ChatOutput => ({
        reply,
        messages: state.messages,
        finish_reason: finish,
        usage: state.usage,
        turns: state.turns,
      });

      for (;;) {
        if (!state.awaiting) {
          // One turn: ask the model, run the tools it asks for, until it answers.
          let reply: string;
          let finish: string;
          for (;;) {
            ctx.signal.throwIfAborted();
            const completion = await llm.complete(
              {
                messages: state.messages,
                tools: tools.map((t) => t.spec),
                ...(input.temperature !== undefined ? { temperature: input.temperature } : {}),
                ...(input.max_tokens !== undefined ? { maxTokens: input.max_tokens } : {}),
              },
              { signal: ctx.signal, onText: (text) => ctx.delta(text) },
            );
            if (completion.usage) {
              state.usage.prompt_tokens += completion.usage.prompt_tokens;
              state.usage.completion_tokens += completion.usage.completion_tokens;
            }
            state.messages.push({
              role: "assistant",
              content: completion.content === "" && completion.toolCalls.length > 0 ? null : completion.content,
              ...(completion.toolCalls.length > 0 ? { tool_calls: completion.toolCalls } : {}),
            });
            if (completion.toolCalls.length === 0) {
              reply = completion.content;
              finish = completion.finishReason;
              break;
            }
            state.rounds++;
            if (state.rounds > maxToolRounds) {
              throw new AgentFailure(
                "TOOL_ROUNDS_EXCEEDED",
                `the model kept calling tools: more than ${maxToolRounds} rounds in one turn (AGENTD_LLM_MAX_TOOL_ROUNDS)`,
                { retryable: false },
              );
            }
            for (const call of completion.toolCalls) {
              state.messages.push({ role: "tool", tool_call_id: call.id, content: await callTool(call, byName, ctx) });
            }
            // A retry resumes after the tools that already ran.
            await save();
          }
          state.turns++;
          state.rounds = 0;
          if (!input.conversation) return output(reply, finish);
          state.awaiting = { reply, finish_reason: finish };
          await save();
        }
        const { reply, finish_reason } = state.awaiting;
        const answer = (await ctx.requestInput({
          prompt: reply.length > 4000 ? `${reply.slice(0, 3997)}...` : reply || "(the model gave no text)",
          schema: NEXT_MESSAGE,
        })) as { message?: string; done?: boolean };
        if (answer.done === true || answer.message === undefined) return output(reply, finish_reason);
        state.messages.push({ role: "user", content: answer.message });
        delete state.awaiting;
        await save(); // consumes the answer: a retry from here will not be handed it again
      }
    },
  };
}
