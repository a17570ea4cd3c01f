// A minimal in-memory AgentContext for unit tests: records what the agent does, and plays the
// runtime's part in input requests (the first requestInput of a resumed run gets the answer).
import { type AgentContext, InputRequired, type Json } from "agentd-server";

export function testContext(opts: { savedState?: Json; answer?: Json; signal?: AbortSignal } = {}) {
  const seen = {
    deltas: [] as string[],
    tools: [] as { name: string; args: Json }[],
    checkpoints: [] as Json[],
    questions: [] as string[],
  };
  let answer = opts.answer;
  const ctx: AgentContext = {
    signal: opts.signal ?? new AbortController().signal,
    taskId: "test-task",
    attempt: 1,
    savedState: opts.savedState,
    progress: async () => {},
    delta: (text) => {
      seen.deltas.push(text);
    },
    tool: async (name, args, fn) => {
      seen.tools.push({ name, args });
      return fn();
    },
    artifact: async () => {},
    log: async () => {},
    checkpoint: async (state) => {
      seen.checkpoints.push(state);
    },
    requestInput: async (request) => {
      if (answer !== undefined) {
        const value = answer;
        answer = undefined;
        return value;
      }
      seen.questions.push(request.prompt);
      throw new InputRequired(request);
    },
  };
  return { ctx, seen };
}
