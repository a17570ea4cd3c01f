// The tools `chat` offers a model: the calculator, and every other agent on this replica whose
// card has the capability `callable`, as a function whose parameters are the agent's input
// schema. A call runs the agent in-process with a narrowed context: it shares the task's
// signal and tool log, but cannot stream into the chat's reply, overwrite the chat's
// checkpoint or ask for input.
import type { AgentContext, AgentDefinition, Json } from "../agent.js";
import type { AgentRegistry } from "../registry.js";
import { evaluate, MAX_EXPRESSION_LENGTH } from "./calculator.js";
import type { ToolSpec } from "./llm-client.js";

/** A tool call that failed in a way the model should hear about (bad arguments, tool error). */
export class ToolError extends Error {
  override name = "ToolError";
}

export interface Tool {
  /** The name the model sees (OpenAI allows `[A-Za-z0-9_-]{1,64}`). */
  name: string;
  spec: ToolSpec;
  run(args: Json, ctx: AgentContext): Promise<Json>;
}

const CALCULATOR: Tool = {
  name: "calculator",
  spec: {
    type: "function",
    function: {
      name: "calculator",
      description:
        "Evaluates an arithmetic expression exactly: numbers, + - * / % ^, parentheses, pi, e, and sqrt abs round floor ceil ln log exp sin cos tan pow min max.",
      parameters: {
        type: "object",
        properties: {
          expression: { type: "string", maxLength: MAX_EXPRESSION_LENGTH, description: "e.g. (17.5 * 4) / 100" },
        },
        required: ["expression"],
        additionalProperties: false,
      },
    },
  },
  async run(args) {
    const expression = (args as { expression?: unknown } | null)?.expression;
    if (typeof expression !== "string") throw new ToolError('arguments must be {"expression": "<arithmetic>"}');
    try {
      return { result: evaluate(expression) };
    } catch (err) {
      throw new ToolError(err instanceof Error ? err.message : String(err));
    }
  },
};

function toolName(agentName: string): string {
  return agentName.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
}

function parameters(schema: Json): Record<string, unknown> {
  if (schema !== null && typeof schema === "object" && !Array.isArray(schema)) return schema as Record<string, unknown>;
  return { type: "object" };
}

function agentTool(agent: AgentDefinition, registry: AgentRegistry): Tool {
  const ref = `${agent.name}@${agent.version}`;
  const name = toolName(agent.name);
  return {
    name,
    spec: {
      type: "function",
      function: { name, description: agent.description, parameters: parameters(agent.inputSchema) },
    },
    async run(args, ctx) {
      const bad = registry.validateInput(ref, args);
      if (bad.length > 0)
        throw new ToolError(`invalid arguments: ${bad.map((v) => `${v.field} ${v.description}`).join("; ")}`);
      const inner: AgentContext = {
        signal: ctx.signal,
        taskId: ctx.taskId,
        attempt: ctx.attempt,
        savedState: undefined,
        progress: async () => {},
        delta: () => {},
        tool: (n, a, fn) => ctx.tool(n, a, fn),
        artifact: async () => {},
        log: (level, message) => ctx.log(level, `${agent.name}: ${message}`),
        checkpoint: async () => {},
        requestInput: async () => {
          throw new ToolError(`${agent.name} asked for input, which a tool cannot do`);
        },
      };
      let output: unknown;
      try {
        output = await agent.run(args, inner);
      } catch (err) {
        if (ctx.signal.aborted || err instanceof ToolError) throw err;
        throw new ToolError(err instanceof Error ? err.message : String(err));
      }
      const wrong = registry.validateOutput(ref, output);
      if (wrong.length > 0) throw new ToolError(`${agent.name} returned an output that does not match its schema`);
      return (output ?? null) as Json;
    },
  };
}

/**
 * The tools on offer to a chat run: the calculator and every `callable` agent except `self`,
 * limited to `wanted` when given. Unknown names in `wanted` are returned in `unknown`.
 */
export function toolsFor(
  registry: AgentRegistry | undefined,
  self: string,
  wanted: string[] | undefined,
): { tools: Tool[]; unknown: string[] } {
  const all = new Map<string, Tool>([[CALCULATOR.name, CALCULATOR]]);
  const seen = new Set<string>();
  for (const agent of registry?.list() ?? []) {
    // list() gives the newest version of each name first.
    if (seen.has(agent.name) || agent.name === self) continue;
    seen.add(agent.name);
    if (!agent.capabilities?.includes("callable") || agent.unavailableReason !== undefined) continue;
    const tool = agentTool(agent, registry!);
    if (!all.has(tool.name)) all.set(tool.name, tool);
  }
  if (wanted === undefined) return { tools: [...all.values()], unknown: [] };
  const unknown = wanted.filter((w) => !all.has(toolName(w)));
  return { tools: wanted.map((w) => all.get(toolName(w))).filter((t): t is Tool => t !== undefined), unknown };
}
