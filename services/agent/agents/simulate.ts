// Built-in agent `simulate`: a configurable multi-step job for tests and benchmarks. It
// exercises every part of the agent contract — progress, checkpoints and resumption, input
// requests, streamed deltas, chosen failures, cancellation, and a run that ignores its abort
// signal — with deterministic behaviour chosen by its input.
//
// A run goes through these phases, in order:
//   1. ask     — each `ask` entry in turn: checkpoint {asked: k, answers}, then requestInput;
//   2. steps   — steps 1..`steps`: fail here if `fail_at_step` says so, wait `step_delay_ms`
//                (abortable), report progress, checkpoint {step};
//   3. deltas  — `deltas` text deltas "d1 ", "d2 ", …, at `delta_rate` per second if given;
//   4. hang    — if `hang`: wait `hang_ms` (or forever) ignoring the abort signal;
//   then return {steps_completed, resumed_from_step, answers, deltas_sent, output}.
// The checkpoint is one object {step, asked, answers}, so a retry or a resume after input
// continues where the last one stopped: no question is asked twice, no step done twice.
import { sleep, yieldToEventLoop } from "./abortable.js";
import { type AgentContext, type AgentDefinition, AgentFailure, type Json } from "./agent.js";

interface SimulateAsk {
  prompt: string;
  schema: Json;
  expires_in_ms?: number;
}

export interface SimulateInput {
  steps?: number;
  step_delay_ms?: number;
  fail_at_step?: number;
  fail_message?: string;
  fail_retryable?: boolean;
  fail_attempts?: number;
  hang?: boolean;
  hang_ms?: number;
  deltas?: number;
  delta_rate?: number;
  ask?: SimulateAsk[];
  checkpoint?: boolean;
  output?: Json;
}

export type SimulateOutput = {
  steps_completed: number;
  resumed_from_step: number;
  answers: Json[];
  deltas_sent: number;
  output: Json;
};

/** What `simulate` checkpoints. */
export type SimulateState = { step: number; asked: number; answers: Json[] };

const inputSchema: Json = {
  type: "object",
  properties: {
    steps: { type: "integer", minimum: 0, maximum: 10_000, default: 3, description: "Number of steps." },
    step_delay_ms: {
      type: "integer",
      minimum: 0,
      maximum: 600_000,
      default: 0,
      description: "Time each step takes; cut short by cancellation.",
    },
    fail_at_step: {
      type: "integer",
      minimum: 1,
      description: "Fail with code SIMULATED_FAILURE on reaching this step (before doing it).",
    },
    fail_message: { type: "string", maxLength: 2000, description: "Message of the simulated failure." },
    fail_retryable: {
      type: "boolean",
      default: false,
      description: "Whether the simulated failure is retryable (the task is retried while attempts remain).",
    },
    fail_attempts: {
      type: "integer",
      minimum: 1,
      description:
        "Fail only on attempts 1..fail_attempts (default: every attempt); later attempts resume and succeed.",
    },
    hang: {
      type: "boolean",
      default: false,
      description: "After the steps, ignore the abort signal and wait hang_ms, or forever.",
    },
    hang_ms: { type: "integer", minimum: 0, maximum: 3_600_000, description: "How long to hang." },
    deltas: {
      type: "integer",
      minimum: 0,
      maximum: 1_000_000,
      default: 0,
      description: 'Number of text deltas to stream after the steps: "d1 ", "d2 ", ….',
    },
    delta_rate: {
      type: "number",
      exclusiveMinimum: 0,
      maximum: 1_000_000,
      description: "Deltas per second (default: as fast as possible).",
    },
    ask: {
      type: "array",
      maxItems: 100,
      description: "Input requests to make in order, before the steps; the answers are returned.",
      items: {
        type: "object",
        properties: {
          prompt: { type: "string", minLength: 1, maxLength: 10_000 },
          schema: { type: ["object", "boolean"], description: "JSON Schema the answer must match." },
          expires_in_ms: { type: "integer", minimum: 1 },
        },
        required: ["prompt", "schema"],
        additionalProperties: false,
      },
    },
    checkpoint: {
      type: "boolean",
      default: true,
      description: "Checkpoint after each step, so that a retried attempt resumes after the last step done.",
    },
    output: { description: "Any JSON, echoed back as `output`." },
  },
  additionalProperties: false,
};

const outputSchema: Json = {
  type: "object",
  properties: {
    steps_completed: { type: "integer", minimum: 0 },
    resumed_from_step: { type: "integer", minimum: 0, description: "Last step done by an earlier attempt (0: none)." },
    answers: { type: "array", description: "Answers to the `ask` requests, in order." },
    deltas_sent: { type: "integer", minimum: 0 },
    output: { description: "The input's `output`, or null." },
  },
  required: ["steps_completed", "resumed_from_step", "answers", "deltas_sent", "output"],
  additionalProperties: false,
};

/** Reads a checkpoint defensively: anything unexpected counts as "start from the beginning". */
export function readSimulateState(saved: Json | undefined): SimulateState {
  const state: SimulateState = { step: 0, asked: 0, answers: [] };
  if (saved === null || typeof saved !== "object" || Array.isArray(saved)) return state;
  const { step, asked, answers } = saved;
  if (typeof step === "number" && Number.isInteger(step) && step >= 0) state.step = step;
  if (Array.isArray(answers)) state.answers = [...answers];
  if (typeof asked === "number" && Number.isInteger(asked) && asked >= 0) {
    state.asked = Math.min(asked, state.answers.length);
  }
  state.answers = state.answers.slice(0, state.asked);
  return state;
}

async function run(input: SimulateInput, ctx: AgentContext): Promise<SimulateOutput> {
  const { signal } = ctx;
  const steps = input.steps ?? 3;
  const stepDelayMs = input.step_delay_ms ?? 0;
  const checkpointSteps = input.checkpoint ?? true;
  const asks = input.ask ?? [];
  const saved = readSimulateState(ctx.savedState);
  const resumedFromStep = Math.min(saved.step, steps);
  let step = resumedFromStep;
  let asked = saved.asked;
  const answers = saved.answers;

  // 1. Questions. Checkpoint before each one: on resume, the first requestInput of the run
  // returns the pending answer, and the state says which question it answers.
  const firstToAsk = asked;
  for (let k = firstToAsk; k < asks.length; k++) {
    signal.throwIfAborted();
    const ask = asks[k]!;
    // The state on resume is already exactly this one; writing it again would change nothing.
    if (!(k === firstToAsk && ctx.savedState !== undefined && saved.asked === k)) {
      await ctx.checkpoint({ step, asked: k, answers });
    }
    const answer = await ctx.requestInput({
      prompt: ask.prompt,
      schema: ask.schema,
      ...(ask.expires_in_ms === undefined ? {} : { expiresInMs: ask.expires_in_ms }),
    });
    answers.push(answer);
    asked = k + 1;
  }
  // Keep the answers: until a checkpoint holds them, a lost run would have to be answered again.
  if (asked > firstToAsk) await ctx.checkpoint({ step, asked, answers });

  // 2. Steps.
  for (let s = step + 1; s <= steps; s++) {
    signal.throwIfAborted();
    if (input.fail_at_step === s && (input.fail_attempts === undefined || ctx.attempt <= input.fail_attempts)) {
      throw new AgentFailure("SIMULATED_FAILURE", input.fail_message ?? `simulated failure at step ${s}`, {
        retryable: input.fail_retryable ?? false,
        details: { step: s, attempt: ctx.attempt },
      });
    }
    if (stepDelayMs > 0) await sleep(stepDelayMs, signal);
    await ctx.progress({
      step: s,
      totalSteps: steps,
      percent: Math.round((s / steps) * 10_000) / 100,
      message: `step ${s} of ${steps}`,
    });
    step = s;
    if (checkpointSteps) await ctx.checkpoint({ step, asked, answers });
  }

  // 3. Deltas.
  const deltas = input.deltas ?? 0;
  const intervalMs = input.delta_rate ? 1000 / input.delta_rate : 0;
  let deltasSent = 0;
  for (let i = 1; i <= deltas; i++) {
    signal.throwIfAborted();
    if (intervalMs > 0 && i > 1) await sleep(intervalMs, signal);
    else if (intervalMs === 0 && i % 1000 === 0) await yieldToEventLoop(); // let cancellation in
    ctx.delta(`d${i} `);
    deltasSent++;
  }

  // 4. Hang, deliberately deaf to the abort signal: the runtime must discard what comes after.
  if (input.hang) {
    const hangMs = input.hang_ms;
    await new Promise<void>((resolve) => {
      if (hangMs !== undefined) setTimeout(resolve, hangMs);
    });
  }

  return {
    steps_completed: step,
    resumed_from_step: resumedFromStep,
    answers,
    deltas_sent: deltasSent,
    output: input.output ?? null,
  };
}

export const simulateAgent: AgentDefinition<SimulateInput, SimulateOutput> = {
  name: "simulate",
  version: "1.0.0",
  description: "Simulates a multi-step job; used by tests and benchmarks.",
  inputSchema,
  outputSchema,
  capabilities: ["streaming", "progress", "input", "checkpoints"],
  run,
};
