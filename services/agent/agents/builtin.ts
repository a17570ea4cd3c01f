// The agents every agentd service offers, before any user module is loaded.
import type { AgentDefinition } from "./agent.js";
import { simulateAgent } from "./simulate.js";
import { summarizeAgent } from "./summarize.js";

/** The built-in agents: `summarize` and `simulate`. */
export function builtinAgents(): AgentDefinition[] {
  return [summarizeAgent, simulateAgent];
}
