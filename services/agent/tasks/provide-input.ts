// Human in the loop: an answer to the task's pending input request (TaskService.ProvideInput
// and Converse `input`). The answer is checked against the request's JSON Schema and applied
// in the task's own transaction, so it can neither answer a question other than the one it
// was checked against nor be applied twice: a repeated request_id returns the task as it is.
// The answer queues the task again; whichever runner claims it resumes the agent from its
// checkpoint with the answer (see AgentContext.requestInput), after any number of restarts.
import type { JsonValue } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { invalidArgument, notFound, rpcError } from "../../shared/errors.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import { validateAnswer } from "./answer-schema.js";
import type { TaskDeps } from "./deps.js";
import { answer, expireInput } from "./transitions.js";

export interface InputAnswer {
  value: JsonValue;
  /** Idempotency key; null: none (each call is a new answer). */
  requestId: string | null;
}

function notWaiting(task: TaskRow) {
  return rpcError(
    Code.FailedPrecondition,
    "TASK_NOT_WAITING_FOR_INPUT",
    `task "${task.task_id}" is ${task.state}, not waiting for input; only a task in INPUT_REQUIRED takes an answer`,
    { metadata: { state: task.state } },
  );
}

/** Applies the answer; returns the task after it (QUEUED), or as it is for a repeated request_id.
 * `field` names the value in violations (`value`, or `input.value` in a conversation). */
export async function provideInput(
  deps: Pick<TaskDeps, "writer">,
  key: TaskKey,
  given: InputAnswer,
  field = "value",
): Promise<TaskRow> {
  const now = new Date();
  const result = await deps.writer.change(key, (task) => {
    if (given.requestId !== null && task.input_answer_ids.includes(given.requestId)) return null;
    if (task.state !== "INPUT_REQUIRED") throw notWaiting(task);
    // Past its expiry but not swept yet: expire it now rather than take a late answer.
    const expired = expireInput(now)(task);
    if (expired) return expired;
    const schema = (task.input_request?.schema ?? {}) as JsonValue;
    const violations = validateAnswer(schema, given.value, field);
    if (violations.length > 0) throw invalidArgument(violations, "ANSWER_SCHEMA_VIOLATION");
    return answer(given.value, given.requestId, now)(task);
  });
  if (result.status === "missing") throw notFound("task", key.taskId);
  if (result.status === "fenced") throw new Error("unreachable: ProvideInput writes without a fence");
  const task = result.task;
  if (result.status === "changed" && task.state === "FAILED") {
    throw rpcError(
      Code.FailedPrecondition,
      "INPUT_EXPIRED",
      `the input request of task "${task.task_id}" has expired; the task failed with INPUT_TIMEOUT`,
    );
  }
  return task;
}
