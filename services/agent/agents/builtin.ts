// The agents every agentd service offers, before any user module is loaded.
import type { Config } from "../../shared/config.js";
import type { AgentDefinition } from "./agent.js";
import { analyzeDocumentAgent } from "./analyze-document.js";
import type { RetryPolicy } from "./chat/llm-client.js";
import { createChatAgent } from "./chat.js";
import type { AgentRegistry } from "./registry.js";
import { simulateAgent } from "./simulate.js";
import { summarizeAgent } from "./summarize.js";
import { createValidateAgent } from "./validate.js";

export interface BuiltinOptions {
  /** The LLM settings for `chat`; without base URL and model, `chat` is listed as unavailable. */
  config?: Partial<Pick<Config, "llmBaseUrl" | "llmApiKey" | "llmModel" | "llmMaxToolRounds">>;
  /** The registry these agents end up in (for `chat`'s tools); read at run time. */
  agents?: () => AgentRegistry | undefined;
  /** Upstream retry timing for `chat` (tests shorten it). */
  llmRetry?: Partial<RetryPolicy>;
}

/** The built-in agents: `chat`, `summarize`, `validate`, `analyze-document` and `simulate`. */
export function builtinAgents(opts: BuiltinOptions = {}): AgentDefinition[] {
  const { config = {} } = opts;
  const llm =
    config.llmBaseUrl && config.llmModel
      ? { baseUrl: config.llmBaseUrl, apiKey: config.llmApiKey, model: config.llmModel }
      : undefined;
  return [
    createChatAgent({
      llm,
      ...(config.llmMaxToolRounds !== undefined ? { maxToolRounds: config.llmMaxToolRounds } : {}),
      ...(opts.agents ? { agents: opts.agents } : {}),
      ...(opts.llmRetry ? { retry: opts.llmRetry } : {}),
    }) as AgentDefinition,
    // Summarizing is a natural tool for a model: offer it to `chat`.
    { ...summarizeAgent, capabilities: [...(summarizeAgent.capabilities ?? []), "callable"] },
    createValidateAgent(),
    analyzeDocumentAgent as AgentDefinition,
    simulateAgent,
  ];
}
