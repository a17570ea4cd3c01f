// The agents every agentd service offers, before any user module is loaded.
import type { AgentDefinition } from "./agent.js";
import { simulateAgent } from "./simulate.js";
import { summarizeAgent } from "./summarize.js";
import { createValidateAgent } from "./validate.js";

/** The built-in agents: `summarize`, `validate` and `simulate`. */
export function builtinAgents(): AgentDefinition[] {
  return [
    // Summarizing is a natural tool for a model: offer it to `chat`.
    { ...summarizeAgent, capabilities: [...(summarizeAgent.capabilities ?? []), "callable"] },
    createValidateAgent(),
    simulateAgent,
  ];
}
