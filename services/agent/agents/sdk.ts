// The agent SDK: what another project imports to write agents for agentd.
//
//   import { defineAgent, AgentFailure } from "agentd-server";
//
// Built to dist/services/agent/agents/sdk.js + .d.ts (tsconfig.sdk.json, run by `prepare`), so an installed
// package needs no TypeScript loader for it. It depends on nothing but agent.ts.
export {
  AGENT_CAPABILITIES,
  type AgentCapability,
  type AgentContext,
  type AgentDefinition,
  AgentFailure,
  type ArtifactDraft,
  defineAgent,
  type InputRequestDraft,
  InputRequired,
  isAgentFailure,
  isInputRequired,
  type Json,
  type JsonObject,
  type ProgressUpdate,
} from "./agent.js";
