import { describe, expect, it } from "vitest";
import { AgentFailure, isInputRequired, type Json } from "../../services/agent/agents/agent.js";
import { createAgentRegistry } from "../../services/agent/agents/registry.js";
import { readSimulateState, type SimulateInput, simulateAgent } from "../../services/agent/agents/simulate.js";
import { createFakeContext } from "./fake-context.js";

const run = (input: SimulateInput, options: Parameters<typeof createFakeContext>[0] = {}) => {
  const fake = createFakeContext(options);
  return { fake, result: simulateAgent.run(input, fake.ctx) };
};

describe("simulate agent", () => {
  const registry = createAgentRegistry([simulateAgent]);

  it("runs three steps by default, reporting progress and checkpointing each", async () => {
    const { fake, result } = run({});
    const output = await result;
    expect(output).toEqual({ steps_completed: 3, resumed_from_step: 0, answers: [], deltas_sent: 0, output: null });
    expect(fake.progress).toEqual([
      { step: 1, totalSteps: 3, percent: 33.33, message: "step 1 of 3" },
      { step: 2, totalSteps: 3, percent: 66.67, message: "step 2 of 3" },
      { step: 3, totalSteps: 3, percent: 100, message: "step 3 of 3" },
    ]);
    expect(fake.checkpoints).toEqual([1, 2, 3].map((step) => ({ step, asked: 0, answers: [] })));
    expect(registry.validateOutput("simulate", output)).toEqual([]);
  });

  it("echoes its output and can skip checkpoints", async () => {
    const { fake, result } = run({ steps: 2, checkpoint: false, output: { hello: ["world", 1] } });
    expect((await result).output).toEqual({ hello: ["world", 1] });
    expect(fake.checkpoints).toEqual([]);
  });

  it("does nothing with zero steps", async () => {
    const { fake, result } = run({ steps: 0 });
    expect(await result).toMatchObject({ steps_completed: 0 });
    expect(fake.calls).toEqual([]);
  });

  it("resumes after the last step of an earlier attempt", async () => {
    const { fake, result } = run({ steps: 5 }, { attempt: 2, savedState: { step: 2, asked: 0, answers: [] } });
    expect(await result).toMatchObject({ steps_completed: 5, resumed_from_step: 2 });
    expect(fake.progress.map((p) => p.step)).toEqual([3, 4, 5]);
  });

  it("fails at the chosen step with SIMULATED_FAILURE, and a retry resumes from its checkpoint", async () => {
    const input: SimulateInput = { steps: 5, fail_at_step: 3, fail_attempts: 1, fail_retryable: true };
    const first = run(input);
    const failure = await first.result.catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(AgentFailure);
    expect(failure).toMatchObject({
      code: "SIMULATED_FAILURE",
      message: "simulated failure at step 3",
      retryable: true,
      details: { step: 3, attempt: 1 },
    });
    expect(first.fake.progress.map((p) => p.step)).toEqual([1, 2]);

    const second = run(input, { attempt: 2, savedState: first.fake.checkpoints.at(-1) });
    expect(await second.result).toMatchObject({ steps_completed: 5, resumed_from_step: 2 });
    expect(second.fake.progress.map((p) => p.step)).toEqual([3, 4, 5]);
  });

  it("fails on every attempt unless fail_attempts says otherwise", async () => {
    const input: SimulateInput = { steps: 3, fail_at_step: 1, fail_message: "disk on fire" };
    await expect(run(input, { attempt: 3 }).result).rejects.toMatchObject({
      code: "SIMULATED_FAILURE",
      message: "disk on fire",
      retryable: false,
    });
  });

  it("stops waiting as soon as the signal fires, with the signal's reason", async () => {
    const { fake, result } = run({ steps: 3, step_delay_ms: 60_000 });
    const reason = new Error("cancelled by client");
    const started = Date.now();
    setTimeout(() => fake.controller.abort(reason), 20);
    await expect(result).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(fake.progress).toEqual([]);
  });

  it("asks for input in order, pausing and resuming from its checkpoint each time", async () => {
    const input: SimulateInput = {
      steps: 1,
      ask: [
        { prompt: "Approve?", schema: { type: "boolean" } },
        { prompt: "How many?", schema: { type: "integer" }, expires_in_ms: 60_000 },
      ],
    };
    const answers: Json[] = [true, 3];
    // Play the runtime: run until InputRequired, then re-run with the last checkpoint and the answer.
    let savedState: Json | undefined;
    let pendingAnswer: Json | undefined;
    const prompts: string[] = [];
    for (let round = 0; round < 5; round++) {
      const { fake, result } = run(input, { savedState, pendingAnswer });
      const outcome = await result.then(
        (output) => ({ output }),
        (err: unknown) => ({ err }),
      );
      savedState = fake.checkpoints.at(-1) ?? savedState;
      if ("output" in outcome) {
        expect(outcome.output).toEqual({
          steps_completed: 1,
          resumed_from_step: 0,
          answers: [true, 3],
          deltas_sent: 0,
          output: null,
        });
        expect(prompts).toEqual(["Approve?", "How many?"]);
        expect(fake.requests).toEqual([]);
        return;
      }
      expect(isInputRequired(outcome.err)).toBe(true);
      const request = fake.requests.at(-1)!;
      prompts.push(request.prompt);
      // The checkpoint before the question says which question is pending.
      expect(savedState).toEqual({ step: 0, asked: prompts.length - 1, answers: answers.slice(0, prompts.length - 1) });
      if (request.prompt === "How many?") expect(request).toMatchObject({ expiresInMs: 60_000 });
      pendingAnswer = answers[prompts.length - 1];
    }
    throw new Error("simulate never finished");
  });

  it("streams deltas, at the requested rate", async () => {
    const fast = run({ steps: 0, deltas: 5 });
    expect(await fast.result).toMatchObject({ deltas_sent: 5 });
    expect(fast.fake.deltas).toEqual(["d1 ", "d2 ", "d3 ", "d4 ", "d5 "]);

    const started = Date.now();
    const paced = run({ steps: 0, deltas: 4, delta_rate: 50 });
    await paced.result;
    expect(Date.now() - started).toBeGreaterThanOrEqual(55); // three gaps of 20 ms
  });

  it("hangs deaf to its signal, returning only after hang_ms", async () => {
    const { fake, result } = run({ steps: 1, hang: true, hang_ms: 50, output: "late" });
    let settled = false;
    void result.then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 10));
    fake.controller.abort(new Error("cancelled"));
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(false);
    expect(await result).toMatchObject({ output: "late", steps_completed: 1 });
  });

  it("hangs forever without hang_ms", async () => {
    const { fake, result } = run({ steps: 0, hang: true });
    fake.controller.abort(new Error("cancelled"));
    const winner = await Promise.race([
      result.then(() => "agent"),
      new Promise((r) => setTimeout(() => r("timer"), 100)),
    ]);
    expect(winner).toBe("timer");
  });

  it("validates its input", () => {
    expect(registry.validateInput("simulate", {})).toEqual([]);
    expect(
      registry.validateInput("simulate", { steps: -1, step_delay_ms: 1.5, ask: [{ prompt: "?" }], bogus: true }),
    ).toEqual([
      { field: "input.bogus", description: "is not an allowed field", reason: "ADDITIONAL_PROPERTIES" },
      { field: "input.steps", description: "must be >= 0", reason: "MINIMUM" },
      { field: "input.step_delay_ms", description: "must be integer", reason: "TYPE" },
      { field: "input.ask[0].schema", description: "is required", reason: "REQUIRED" },
    ]);
  });

  it("reads a foreign or damaged checkpoint as a fresh start", () => {
    expect(readSimulateState(undefined)).toEqual({ step: 0, asked: 0, answers: [] });
    expect(readSimulateState("garbage")).toEqual({ step: 0, asked: 0, answers: [] });
    expect(readSimulateState({ step: -2, asked: 5, answers: ["a"] })).toEqual({ step: 0, asked: 1, answers: ["a"] });
  });
});
