// How an attempt ends, decided from the agent's outcome alone: no database, no runner.
import { describe, expect, it } from "vitest";
import { AgentFailure, InputRequired } from "../../services/agent/agents/agent.js";
import { LeaseLost } from "../../services/agent/runner/agent-context.js";
import {
  AttemptTimeout,
  endingOf,
  type Outcome,
  RunnerShutdown,
  TaskCanceled,
} from "../../services/agent/runner/attempt.js";
import type { FieldViolation } from "../../services/shared/errors.js";

const valid = (): FieldViolation[] => [];
const aborted: Outcome = { aborted: true };
const threw = (error: unknown): Outcome => ({ ok: false, error });

describe("the ending of an attempt", () => {
  it("stopped by its timeout: a retryable TIMEOUT failure", () => {
    const reason = new AttemptTimeout("the attempt ran past its timeout of 50 ms");
    expect(endingOf(aborted, reason, valid)).toEqual({
      end: "timeout",
      error: { code: "TIMEOUT", message: "the attempt ran past its timeout of 50 ms", retryable: true },
    });
  });

  it("stopped by a cancel, a lost lease or a shutdown: the outcome is someone else's", () => {
    expect(endingOf(aborted, new TaskCanceled("the task was cancelled"), valid)).toEqual({ end: "elsewhere" });
    expect(endingOf(aborted, new RunnerShutdown("the runner is shutting down"), valid)).toEqual({ end: "elsewhere" });
    expect(endingOf(threw(new LeaseLost("gone")), undefined, valid)).toEqual({ end: "elsewhere" });
  });

  it("an AgentFailure keeps its code, retryability and object details", () => {
    const error = new AgentFailure("UPSTREAM_UNAVAILABLE", "the model is down", {
      retryable: true,
      details: { region: "eu" },
    });
    expect(endingOf(threw(error), undefined, valid)).toEqual({
      end: "failed",
      error: { code: "UPSTREAM_UNAVAILABLE", message: "the model is down", retryable: true, details: { region: "eu" } },
      thrown: error,
    });
    const listDetails = new AgentFailure("BAD", "no", { details: [1, 2] });
    expect(endingOf(threw(listDetails), undefined, valid)).toMatchObject({
      error: { code: "BAD", message: "no", retryable: false },
    });
    expect(endingOf(threw(listDetails), undefined, valid)).not.toHaveProperty("error.details");
  });

  it("any other thrown value is a final AGENT_ERROR", () => {
    expect(endingOf(threw(new Error("boom")), undefined, valid)).toMatchObject({
      end: "failed",
      error: { code: "AGENT_ERROR", message: "boom", retryable: false },
    });
    expect(endingOf(threw(new Error("")), undefined, valid)).toMatchObject({ error: { message: "the agent failed" } });
    expect(endingOf(threw("plain text"), undefined, valid)).toMatchObject({ error: { message: "plain text" } });
  });

  it("asking for input pauses the task with the request (its expiry counted when written)", () => {
    const ask = new InputRequired({ prompt: "Approve?", schema: { type: "boolean" }, expiresInMs: 60_000 });
    expect(endingOf(threw(ask), undefined, valid)).toEqual({
      end: "paused",
      prompt: "Approve?",
      schema: { type: "boolean" },
      expiresInMs: 60_000,
    });
    const anything = new InputRequired({ prompt: "Anything?", schema: true });
    expect(endingOf(threw(anything), undefined, valid)).toEqual({ end: "paused", prompt: "Anything?", schema: {} });
  });

  it("asking for input with a schema that cannot be applied fails the task", () => {
    const ask = new InputRequired({ prompt: "Approve?", schema: { type: "no-such-type" } });
    const ending = endingOf(threw(ask), undefined, valid);
    expect(ending).toMatchObject({ end: "failed", error: { code: "AGENT_ERROR", retryable: false } });
    expect(ending).toHaveProperty("error.message", expect.stringContaining("JSON Schema that cannot be applied"));
  });

  it("an output that matches the agent's schema succeeds; a missing one is null", () => {
    expect(endingOf({ ok: true, output: { answer: 42 } }, undefined, valid)).toEqual({
      end: "succeeded",
      output: { answer: 42 },
    });
    expect(endingOf({ ok: true, output: undefined }, undefined, valid)).toEqual({ end: "succeeded", output: null });
  });

  it("an output that does not match its schema is a final INVALID_OUTPUT", () => {
    const invalid = (): FieldViolation[] => [{ field: "output.answer", description: "must be a number" }];
    expect(endingOf({ ok: true, output: { answer: "x" } }, undefined, invalid)).toEqual({
      end: "failed",
      error: {
        code: "INVALID_OUTPUT",
        message: "the agent's output does not match its schema: output.answer must be a number",
        retryable: false,
      },
    });
  });
});
