// The agent module contract: what a user implements to add an agent to agentd,
// and what the runtime hands an agent while it runs. Nothing here depends on
// the database or the RPC layer, so an agent module imports only this file.
//
// A minimal agent:
//
//   // my-agent.ts, loaded with `agentd dev --agents ./my-agent.ts` (or a .js/.mjs file, a folder)
//   import { defineAgent } from "agentd-server"; // the SDK entry (services/agent/agents/sdk.ts)
//   export default defineAgent<{ name: string }, { greeting: string }>({
//     name: "greet",
//     version: "1.0.0",
//     description: "Greets someone by name.",
//     inputSchema: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
//     outputSchema: { type: "object", properties: { greeting: { type: "string" } }, required: ["greeting"] },
//     async run(input, ctx) {
//       ctx.delta(`Hello, ${input.name}!`);
//       return { greeting: `Hello, ${input.name}!` };
//     },
//   });

/** Any JSON value: what inputs, outputs, checkpoints and answers are made of. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A JSON object (the usual shape of an input, output or checkpoint). */
export type JsonObject = { [k: string]: Json };

/**
 * A progress report. Every field is optional; the runtime keeps the latest report on the task
 * (`Task.progress`) and appends a `progress` event to the task's log.
 */
export interface ProgressUpdate {
  /** The step now completed or running, counted from 1. */
  step?: number;
  /** How many steps there are in all, when known. */
  totalSteps?: number;
  /** 0..100. When omitted and both `step` and `totalSteps` are given, readers may derive it. */
  percent?: number;
  /** A short human-readable line, e.g. "scoring 120 sentences". */
  message?: string;
}

/** A file-like result attached to the task (`Task.artifacts`). Give `text` or `data`, not both. */
export interface ArtifactDraft {
  /** Unique within the task, e.g. "report.md". */
  name: string;
  /** e.g. "text/markdown", "application/json", "image/png". */
  mimeType: string;
  text?: string;
  data?: Uint8Array;
}

/** A question the agent asks its caller (human in the loop). */
export interface InputRequestDraft {
  /** Shown to whoever answers, e.g. "Approve sending 3 e-mails?". */
  prompt: string;
  /**
   * JSON Schema the answer must match. `ProvideInput` rejects an answer that does not match
   * with `INVALID_ARGUMENT`, so `requestInput` only ever returns a valid answer.
   */
  schema: Json;
  /** After this long without an answer the task fails with code `INPUT_TIMEOUT`. */
  expiresInMs?: number;
}

/** The capabilities an agent may announce in its card (`Agent.capabilities`). */
export type AgentCapability =
  | "streaming"
  | "progress"
  | "input"
  | "tools"
  | "artifacts"
  | "checkpoints"
  /** Other agents on the replica (e.g. `chat`) may offer this agent to a model as a tool. */
  | "callable";

/** Every capability name the registry accepts. */
export const AGENT_CAPABILITIES: readonly AgentCapability[] = [
  "streaming",
  "progress",
  "input",
  "tools",
  "artifacts",
  "checkpoints",
  "callable",
];

/**
 * What the runtime gives an agent for one run of one task.
 *
 * Every method that returns a Promise writes to the task's durable event log; await it.
 * Writes are fenced by the attempt: once this attempt no longer holds the task (cancelled, lease
 * lost), they reject and `signal` fires, so an agent that awaits them stops making progress on a
 * task that is no longer its own.
 */
export interface AgentContext {
  /**
   * Fires when the task is cancelled, its timeout passes, or this runner lost its lease.
   * `signal.reason` says which. Check it between units of work (`signal.throwIfAborted()`), pass
   * it to anything that accepts a signal (fetch, timers), and stop promptly: the runtime
   * discards whatever an aborted run returns or throws.
   */
  readonly signal: AbortSignal;
  /** The task's id. */
  readonly taskId: string;
  /** Which attempt this is, from 1. A retry after a failure or a lost lease adds 1. */
  readonly attempt: number;
  /**
   * The state given to the last `checkpoint()` that was written for this task, by an earlier
   * attempt or before a pause for input; `undefined` on a fresh start. An agent that checkpoints
   * must read this first and continue from there instead of starting over.
   */
  readonly savedState: Json | undefined;

  /** Records a progress report (a `progress` event; the task's latest progress). */
  progress(update: ProgressUpdate): Promise<void>;

  /**
   * Streams output text (a `delta` event), e.g. tokens as they are produced. Fire and forget:
   * the runtime coalesces deltas over a short window before writing them, so calling it per
   * token is fine. Deltas are for watchers; the task's result is what `run` returns.
   */
  delta(text: string): void;

  /**
   * Runs `fn` as a named tool call and records it (a `tool_call` event with `name`, `args`,
   * and the result or the error's message). Returns what `fn` returns; rethrows what it throws.
   */
  tool<T extends Json>(name: string, args: Json, fn: () => Promise<T> | T): Promise<T>;

  /** Attaches an artifact to the task (an `artifact` event). */
  artifact(artifact: ArtifactDraft): Promise<void>;

  /** Writes a log line to the task's event log (a `log` event), visible to the task's readers. */
  log(level: "debug" | "info" | "warn" | "error", message: string): Promise<void>;

  /**
   * Durably saves `state` as the task's saved state. A later run of this task (a retry after a
   * failure or lost lease, or the resume after a pause for input) receives it as `savedState`.
   * Each call replaces the previous state. Keep it small (it is stored on every call) and make
   * it describe *where to continue*, e.g. `{ step: 4, partial: [...] }`.
   */
  checkpoint(state: Json): Promise<void>;

  /**
   * Asks the caller for input and returns the answer, which has been validated against
   * `request.schema`.
   *
   * **How it works.** No process waits for the answer: a human may answer in a week, on another
   * replica, after restarts. So the runtime does not keep this call pending. Instead:
   *
   * 1. When no answer is pending, `requestInput` records the request, moves the task to
   *    `INPUT_REQUIRED`, and **throws {@link InputRequired}**. The run ends there and the runner
   *    frees its slot. The agent must let that error propagate (see {@link InputRequired}).
   * 2. When the answer arrives (`ProvideInput`), the task is queued again. A runner (any
   *    replica) calls `run(input, ctx)` again from the top, with the same `input` and with
   *    `ctx.savedState` = the last checkpoint written before the pause.
   * 3. In that resumed run, the **first** call to `requestInput` returns the pending answer at
   *    once, whatever its `request` argument. Any later call in the same run asks a new
   *    question (back to 1).
   *
   * **So an agent that asks for input must:**
   * - call `checkpoint()` (and await it) right before `requestInput`, with everything needed to
   *   get back to this point — including earlier answers, which are not kept for it otherwise;
   * - at the top of `run`, read `ctx.savedState` and skip straight to the pending question
   *   without redoing work or re-emitting events, then call `requestInput` with the same request;
   * - after receiving the answer, include it in its next checkpoint before further slow or
   *   failing work. Until this run writes a checkpoint *after* receiving the answer, the answer
   *   stays pending: if the run is lost (crash, lost lease), the next attempt receives the same
   *   answer again at its first `requestInput`. A checkpoint written before the first
   *   `requestInput` of a resumed run does not consume the answer.
   *
   * Resuming after input is not a retry: it does not count against the task's `max_attempts`.
   *
   * @throws {InputRequired} when the task must pause; never catch it without rethrowing.
   */
  requestInput(request: InputRequestDraft): Promise<Json>;
}

/**
 * An agent: a name, a version, JSON Schemas of its input and output, and `run`.
 *
 * The runtime validates the input against `inputSchema` before calling `run` (a bad input is
 * an `INVALID_ARGUMENT` RPC error, never a task) and the returned output against `outputSchema`
 * (a mismatch fails the task with code `INVALID_OUTPUT`). Schemas are compiled once at startup
 * by Ajv in strict mode, so an unknown keyword, an unknown format, `properties` without
 * `type: "object"` or a `required` property not listed in `properties` stops the service with a
 * message naming the agent. Schemas are JSON Schema draft-07 unless they declare
 * `"$schema": "https://json-schema.org/draft/2020-12/schema"`; formats come from ajv-formats.
 *
 * `run` must be declared with method syntax (`run(input, ctx) { … }` or `async run(…)`), which
 * lets an `AgentDefinition<MyInput, MyOutput>` be listed where `AgentDefinition` is expected.
 *
 * @typeParam I - the input type `inputSchema` describes.
 * @typeParam O - the output type `outputSchema` describes; must be JSON.
 */
export interface AgentDefinition<I = unknown, O = unknown> {
  /** Unique in the service; lowercase letters, digits, `.`, `_`, `-`; starts with a letter. */
  name: string;
  /** The agent's version, shown in its card and stored on each task (`agent_version`). */
  version: string;
  /** One or two sentences: what the agent does. */
  description: string;
  /** JSON Schema of `input`. */
  inputSchema: Json;
  /** JSON Schema of what `run` returns. */
  outputSchema: Json;
  /** What the agent does while it runs, so clients know what to expect. */
  capabilities?: AgentCapability[];
  /**
   * Set when the agent cannot run here (e.g. a setting it needs is missing). The agent is still
   * listed, with `available: false` and this reason; creating a task for it is
   * `FAILED_PRECONDITION` with reason `AGENT_UNAVAILABLE`.
   */
  unavailableReason?: string;
  /**
   * Does the work. Return the output to succeed. Throw {@link AgentFailure} to fail with a
   * chosen error code; any other error fails the task with code `AGENT_ERROR` and its message.
   * Must honour `ctx.signal`.
   */
  run(input: I, ctx: AgentContext): Promise<O>;
}

/**
 * Thrown by an agent to fail its task with a chosen `TaskError`. The task ends `FAILED` with
 * `{code, message, retryable, details}`. When `retryable` is true and attempts remain, the
 * runtime queues another attempt (which sees the last checkpoint as `savedState`).
 */
export class AgentFailure extends Error {
  /** Stable, UPPER_SNAKE_CASE, e.g. "UPSTREAM_UNAVAILABLE". */
  readonly code: string;
  readonly retryable: boolean;
  readonly details: Json | undefined;

  constructor(code: string, message: string, opts: { retryable?: boolean; details?: Json; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "AgentFailure";
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.details = opts.details;
  }
}

/**
 * True when `err` is an {@link AgentFailure}. Also recognises one created by another copy of
 * this module (a user module that resolved its own copy), which `instanceof` would miss.
 */
export function isAgentFailure(err: unknown): err is AgentFailure {
  return (
    err instanceof AgentFailure ||
    (err instanceof Error && err.name === "AgentFailure" && typeof (err as { code?: unknown }).code === "string")
  );
}

/**
 * Thrown by `ctx.requestInput()` when the task must pause for input. The runtime catches it
 * after `run` rejects with it, and parks the task in `INPUT_REQUIRED` with `request`.
 *
 * **An agent must not swallow it.** Code that catches errors around work that may ask for input
 * must rethrow what it does not own:
 *
 *   try { … await ctx.requestInput(…) … }
 *   catch (err) {
 *     if (!(err instanceof MyRecoverableError)) throw err;   // InputRequired, aborts, …
 *     …
 *   }
 *
 * An agent that swallows it carries on without an answer and the pause is lost: the task never
 * enters `INPUT_REQUIRED`, and whatever the run does next is built on a question nobody saw.
 */
export class InputRequired extends Error {
  readonly request: InputRequestDraft;

  constructor(request: InputRequestDraft) {
    super(`input required: ${request.prompt}`);
    this.name = "InputRequired";
    this.request = request;
  }
}

/** True when `err` is the {@link InputRequired} signal (also from another copy of this module). */
export function isInputRequired(err: unknown): err is InputRequired {
  return err instanceof InputRequired || (err instanceof Error && err.name === "InputRequired" && "request" in err);
}

/**
 * Identity helper that gives `run`'s parameters their types from the type arguments, so a
 * module can write `export default defineAgent<In, Out>({ … })`.
 */
export function defineAgent<I, O>(definition: AgentDefinition<I, O>): AgentDefinition<I, O> {
  return definition;
}
