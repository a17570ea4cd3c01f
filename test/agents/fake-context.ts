// An in-memory AgentContext for unit tests: records everything an agent does, and plays the
// runtime's part in input requests (a pending answer is returned by the first requestInput of
// a run; otherwise requestInput throws InputRequired, as the real runtime does to pause).
import {
  type AgentContext,
  type ArtifactDraft,
  type InputRequestDraft,
  InputRequired,
  type Json,
  type ProgressUpdate,
} from "../../services/agent/agents/agent.js";

export interface FakeContextOptions {
  taskId?: string;
  attempt?: number;
  savedState?: Json;
  /** The answer waiting for this run's first requestInput (a resume after input). */
  pendingAnswer?: Json;
  signal?: AbortSignal;
}

export interface FakeContext {
  ctx: AgentContext;
  controller: AbortController;
  progress: ProgressUpdate[];
  deltas: string[];
  checkpoints: Json[];
  requests: InputRequestDraft[];
  artifacts: ArtifactDraft[];
  logs: { level: string; message: string }[];
  tools: { name: string; args: Json; result?: Json; error?: string }[];
  /** Every call in order, e.g. ["progress", "checkpoint", "delta"]. */
  calls: string[];
}

export function createFakeContext(options: FakeContextOptions = {}): FakeContext {
  const controller = new AbortController();
  const signal = options.signal ?? controller.signal;
  let pending: { answer: Json } | undefined =
    options.pendingAnswer === undefined ? undefined : { answer: options.pendingAnswer };
  const fake: Omit<FakeContext, "ctx"> = {
    controller,
    progress: [],
    deltas: [],
    checkpoints: [],
    requests: [],
    artifacts: [],
    logs: [],
    tools: [],
    calls: [],
  };
  // Like the runtime's fenced writes: nothing is recorded once the run has been aborted.
  const write = (kind: string) => {
    signal.throwIfAborted();
    fake.calls.push(kind);
  };
  const ctx: AgentContext = {
    signal,
    taskId: options.taskId ?? "task-1",
    attempt: options.attempt ?? 1,
    savedState: options.savedState,
    async progress(update) {
      write("progress");
      fake.progress.push(update);
    },
    delta(text) {
      fake.calls.push("delta");
      fake.deltas.push(text);
    },
    async tool(name, args, fn) {
      write("tool");
      try {
        const result = await fn();
        fake.tools.push({ name, args, result });
        return result;
      } catch (err) {
        fake.tools.push({ name, args, error: String(err) });
        throw err;
      }
    },
    async artifact(artifact) {
      write("artifact");
      fake.artifacts.push(artifact);
    },
    async log(level, message) {
      write("log");
      fake.logs.push({ level, message });
    },
    async checkpoint(state) {
      write("checkpoint");
      fake.checkpoints.push(structuredClone(state));
    },
    async requestInput(request) {
      write("requestInput");
      if (pending) {
        const { answer } = pending;
        pending = undefined;
        return answer;
      }
      fake.requests.push(request);
      throw new InputRequired(request);
    },
  };
  return { ...fake, ctx };
}
