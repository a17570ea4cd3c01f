// The context an agent runs with: every call becomes an event in the task's log,
// written through the task writer and fenced by the attempt's lease. Writes are
// serialized, and buffered deltas go first, so the log keeps the agent's order.
import { randomUUID } from "node:crypto";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { inSpan } from "../../shared/tracing.js";
import { type AgentContext, InputRequired, type Json } from "../agents/agent.js";
import type { EventDraft, Fence, TaskPatch } from "../model/change.js";
import type { TaskRow } from "../model/task.js";
import type { TaskWriter } from "../store/task-writer.js";
import { record } from "../tasks/transitions.js";
import { createDeltaBuffer } from "./delta-buffer.js";
import { isStoreUnavailable, StoreRejected, StoreUnavailable } from "./store-outage.js";

/** Thrown into the agent's pending writes when its claim on the task is gone. */
export class LeaseLost extends Error {
  override name = "LeaseLost";
}

export interface AttemptContext {
  context: AgentContext;
  /** Writes buffered deltas; resolves once everything the agent emitted is in the log. */
  flush(): Promise<void>;
}

/** The attempt's latest copy of its task, shared by the context and the runner,
 * so each write can be one optimistic statement (TaskWriter.changeHeld). */
export interface HeldTask {
  row: TaskRow;
}

export function createAgentContext(opts: {
  task: TaskRow;
  held: HeldTask;
  fence: Fence;
  writer: TaskWriter;
  signal: AbortSignal;
  deltaWindowMs: number;
  onLeaseLost: () => void;
  /** The store could not be reached: the runner stops the attempt and queues the task again. */
  onStoreUnavailable: (error: unknown) => void;
  onWriteError: (error: unknown) => void;
}): AttemptContext {
  const { task, fence, writer, held } = opts;
  let chain: Promise<void> = Promise.resolve();
  let artifacts = [...task.artifacts];
  let pendingAnswer = task.pending_input as { value: Json } | null;
  // Once the agent has the answer, its next checkpoint records it; from then
  // on the stored answer must not be handed to a later question of a retry.
  let answerHandedOver = false;
  // Once a write failed for want of a store, later writes fail at once: the attempt is over.
  let storeDown: StoreUnavailable | undefined;

  const deltas = createDeltaBuffer({
    windowMs: opts.deltaWindowMs,
    maxChars: 8192,
    onDue: () => {
      write([]).catch(opts.onWriteError);
    },
  });

  function write(events: EventDraft[], patch?: TaskPatch): Promise<void> {
    const run = async () => {
      const text = deltas.take();
      const all: EventDraft[] = text ? [{ kind: "delta", data: { text } }, ...events] : events;
      if (all.length === 0 && !patch) return;
      if (storeDown) throw storeDown;
      let result: Awaited<ReturnType<TaskWriter["changeHeld"]>>;
      try {
        result = await writer.changeHeld(held.row, record(all, patch), fence);
      } catch (error) {
        // Never the driver's error itself: its text (addresses, SQL) would reach the task's error.
        if (!isStoreUnavailable(error)) throw new StoreRejected(error);
        storeDown = new StoreUnavailable(error);
        opts.onStoreUnavailable(error);
        throw storeDown;
      }
      if (result.status === "changed") held.row = result.task;
      if (result.status === "fenced" || result.status === "missing") {
        opts.onLeaseLost();
        throw new LeaseLost(`task ${task.task_id}: this attempt no longer holds the task`);
      }
    };
    const next = chain.then(run);
    chain = next.catch(() => {});
    return next;
  }

  const context: AgentContext = {
    signal: opts.signal,
    taskId: task.task_id,
    attempt: task.attempt,
    savedState: (task.checkpoint ?? undefined) as Json | undefined,
    progress: (update) => {
      const progress: JsonObject = {};
      if (update.step !== undefined) progress.step = update.step;
      if (update.totalSteps !== undefined) progress.totalSteps = update.totalSteps;
      if (update.percent !== undefined) progress.percent = update.percent;
      if (update.message !== undefined) progress.message = update.message;
      return write([{ kind: "progress", data: progress }], { progress });
    },
    delta: (text) => deltas.add(text),
    tool: async (name, args, fn) => {
      const id = randomUUID();
      try {
        const result = await inSpan(`tool ${name}`, { attributes: { "agentd.tool_call_id": id } }, async () => fn());
        await write([
          { kind: "toolCall", data: { id, name, arguments: args as JsonValue, result: result as JsonValue } },
        ]);
        return result;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        await write([{ kind: "toolCall", data: { id, name, arguments: args as JsonValue, error: message } }]);
        throw error;
      }
    },
    artifact: (draft) => {
      const artifact: JsonObject = { name: draft.name, mimeType: draft.mimeType };
      if (draft.data !== undefined) artifact.data = Buffer.from(draft.data).toString("base64");
      else artifact.text = draft.text ?? "";
      artifacts = [...artifacts, artifact];
      return write([{ kind: "artifact", data: artifact }], { artifacts });
    },
    log: (level, message) => write([{ kind: "log", data: { level, message } }]),
    checkpoint: (state) =>
      write(
        [],
        answerHandedOver ? { checkpoint: state as JsonValue, pending_input: null } : { checkpoint: state as JsonValue },
      ),
    requestInput: async (request) => {
      // The first request of a resumed run is answered by the stored answer;
      // otherwise the runner pauses the task (see InputRequired).
      if (pendingAnswer !== null) {
        const { value } = pendingAnswer;
        pendingAnswer = null;
        answerHandedOver = true;
        return value;
      }
      throw new InputRequired(request);
    },
  };

  return { context, flush: () => write([]) };
}
