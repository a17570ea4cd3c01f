// A conversation (AgentService.Converse) once it has its task: the task's events go
// out as they happen while the client's messages come in, each applied in the order
// sent — `input` through the same use case as ProvideInput, `cancel` through
// CancelTask. A message that cannot be applied (no pending request, an answer that
// fails the schema, a second start) is answered with a rejection and the
// conversation goes on; the task is never touched by a refused message.
//
// A client that half-closes has only finished sending (gRPC semantics): its last
// messages are applied and their rejections, if any, sent, and the task's events go
// on. The conversation ends when the task's terminal event has been sent, or — once
// the client has half-closed — when the task waits for input (every event up to that
// point sent), which the client can no longer give. Either way the task is left as it
// is: only `cancel` cancels.
import type { JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "../../../gen/google/rpc/error_details_pb.js";
import type { StoredEvent } from "../model/change.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import { findTask } from "../store/find-task.js";
import { cancelTask } from "../tasks/cancel-task.js";
import type { TaskDeps } from "../tasks/deps.js";
import { provideInput } from "../tasks/provide-input.js";
import { codeName, reasonOf, toWireError } from "../wire/errors.js";
import type { EventHub } from "./event-hub.js";

/** A client message after the first, as the handler parsed it. */
export type ClientMessage =
  | { kind: "input"; value: JsonValue; requestId: string | null }
  | { kind: "cancel" }
  /** Refused at parsing (malformed, or out of order): sent back as a rejection. */
  | { kind: "refused"; error: ConnectError };

export interface Rejection {
  /** The gRPC code name, e.g. FAILED_PRECONDITION. */
  code: string;
  message: string;
  reason: string;
  /** For INVALID_ARGUMENT: one per problem. */
  fieldViolations: { field: string; description: string; reason: string }[];
}

export type ConversationItem =
  | { event: StoredEvent; keepAlive?: undefined; rejection?: undefined }
  | { keepAlive: Date; event?: undefined; rejection?: undefined }
  | { rejection: Rejection; event?: undefined; keepAlive?: undefined };

export function rejectionOf(error: ConnectError): Rejection {
  return {
    code: codeName(error.code),
    message: error.rawMessage,
    reason: reasonOf(error),
    fieldViolations: (error.findDetails(BadRequestSchema)[0]?.fieldViolations ?? []).map(
      ({ field, description, reason }) => ({
        field,
        description,
        reason,
      }),
    ),
  };
}

export async function* conversation(
  deps: { tasks: TaskDeps; hub: EventHub },
  task: TaskRow,
  afterSequence: number,
  messages: AsyncIterable<ClientMessage>,
  signal: AbortSignal,
): AsyncGenerator<ConversationItem, void> {
  const key: TaskKey = { tenantId: task.tenant_id, taskId: task.task_id };
  // Ends the watch when the conversation ends for any reason.
  const done = new AbortController();
  const onAbort = () => done.abort();
  signal.addEventListener("abort", onAbort, { once: true });

  const rejections: Rejection[] = [];
  let halfClosed = false;
  let readError: unknown;
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };

  /** Applies one client message; a refusal becomes a rejection. */
  async function apply(message: ClientMessage): Promise<void> {
    try {
      if (message.kind === "refused") throw message.error;
      if (message.kind === "cancel") await cancelTask(deps.tasks, key);
      else await provideInput(deps.tasks, key, { value: message.value, requestId: message.requestId }, "input.value");
    } catch (error) {
      if (error instanceof ConnectError) rejections.push(rejectionOf(error));
      else {
        // An outage refuses this message only; any other failure ends the call (the edge maps it).
        const wire = toWireError(error, { unavailableMessage: "the database is unavailable; send the message again" });
        if (wire.code !== Code.Unavailable) throw error;
        rejections.push(rejectionOf(wire));
      }
      poke();
    }
  }

  // The client side: read and apply in order, until half-close.
  void (async () => {
    for await (const message of messages) {
      if (done.signal.aborted) return;
      await apply(message);
    }
    halfClosed = true;
  })()
    .catch((error: unknown) => {
      readError = error;
    })
    .finally(poke);

  /** The last sequence sent to the client. */
  let sent = afterSequence;
  /** Whether a half-closed client has nothing more to wait for: the task waits for input
   * and the client has every event up to that point. Asked of the store, not of the events
   * seen, so that an answer applied just before the half-close is not mistaken for waiting. */
  const waitsForInput = async () => {
    const row = await findTask(deps.tasks.sql, key);
    return !row || (row.state === "INPUT_REQUIRED" && Number(row.last_sequence) <= sent);
  };
  let checkedAfterHalfClose = false;

  const events = deps.hub.watch(task, afterSequence, done.signal);
  let next = events.next();
  try {
    for (;;) {
      while (rejections.length > 0) yield { rejection: rejections.shift()! };
      // The request stream broke: a client that went away has aborted `signal` already;
      // anything else (a message that could not be decoded) ends the call with its error.
      if (readError !== undefined) {
        if (signal.aborted) return;
        throw readError;
      }
      if (halfClosed && !checkedAfterHalfClose) {
        checkedAfterHalfClose = true;
        if (await waitsForInput()) return;
      }
      const woken = new Promise<"client">((resolve) => {
        wake = () => resolve("client");
      });
      const result = await Promise.race([next, woken]);
      if (result === "client") continue;
      wake = undefined;
      if (result.done) return;
      yield result.value;
      next = events.next();
      if (result.value.event) {
        sent = result.value.event.sequence;
        if (
          halfClosed &&
          result.value.event.kind === "stateChange" &&
          result.value.event.data.state === "TASK_STATE_INPUT_REQUIRED" &&
          (await waitsForInput())
        )
          return;
      }
    }
  } finally {
    done.abort();
    signal.removeEventListener("abort", onAbort);
    // The watch settles promptly once `done` fires; close it after that.
    next
      .catch(() => {})
      .then(() => events.return(undefined))
      .catch(() => {});
  }
}
