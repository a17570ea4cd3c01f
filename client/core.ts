// The typed agentd client over any Connect transport. Browser-safe: no Node
// imports here (the Node entry, index.ts, builds transports with connect-node;
// a browser builds one with @connectrpc/connect-web and calls createClientWithTransport).
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { type Duration, durationFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { AgentService } from "../gen/agentd/v1/agent_service_pb.js";
import { AuthService } from "../gen/agentd/v1/auth_service_pb.js";
import { type Task, type TaskEvent, TaskState } from "../gen/agentd/v1/task_pb.js";
import { TaskService } from "../gen/agentd/v1/task_service_pb.js";
import { WebhookService } from "../gen/agentd/v1/webhook_service_pb.js";
import { type AgentdError, isTransient, toAgentdError } from "./errors.js";

export type Credentials = { key?: string; token?: string };

/** Adds `authorization: Bearer …` and turns every failure into an AgentdError (streams included). */
export function authInterceptor(credentials: Credentials): Interceptor {
  const secret = credentials.key || credentials.token;
  return (next) => async (req) => {
    if (secret) req.header.set("authorization", `Bearer ${secret}`);
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
          } catch (err) {
            throw toAgentdError(err);
          }
        })(),
      };
    } catch (err) {
      throw toAgentdError(err);
    }
  };
}

export interface WatchOptions {
  /** Resume after this sequence (0 or unset: from the first event). */
  afterSequence?: bigint | number;
  /** Stops watching (the task goes on). */
  signal?: AbortSignal;
  /** First wait before reconnecting; doubles up to `maxBackoffMs`, with jitter. Default 200 ms. */
  initialBackoffMs?: number;
  /** Default 10 s. */
  maxBackoffMs?: number;
  /** Reconnects in a row without receiving anything before giving up. Default: unlimited. */
  maxRetries?: number;
  /** Called before each reconnect (for a "reconnecting…" line). */
  onReconnect?: (info: {
    attempt: number;
    afterSequence: bigint;
    delayMs: number;
    error: AgentdError | undefined;
  }) => void;
}

export type Until = "terminal" | "input_required" | "running" | ((task: Task) => boolean);

export interface RunRequest {
  agent: string;
  input?: JsonValue;
  requestId?: string;
  labels?: Record<string, string>;
  timeoutMs?: number;
}

export interface AgentdClient {
  agents: Client<typeof AgentService>;
  tasks: Client<typeof TaskService>;
  webhooks: Client<typeof WebhookService>;
  /** Mints access tokens (CreateAccessToken) for pages and other less-trusted callers. */
  auth: Client<typeof AuthService>;
  /** A task's events after `afterSequence`, live; reconnects and resumes by itself, ends after the terminal event. */
  watch(taskId: string, opts?: WatchOptions): AsyncIterable<TaskEvent>;
  /** Resolves with the task once `until` holds (default: the task ended). */
  waitFor(taskId: string, opts?: { until?: Until; signal?: AbortSignal }): Promise<Task>;
  /** CreateTask, then waitFor (default: until it ends). Safe to retry with a `requestId`. */
  runAndWait(request: RunRequest, opts?: { until?: Until; signal?: AbortSignal }): Promise<Task>;
}

export const TERMINAL_STATES: readonly TaskState[] = [TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELED];

export function isTerminal(state: TaskState): boolean {
  return TERMINAL_STATES.includes(state);
}

function untilPredicate(until: Until = "terminal"): (task: Task) => boolean {
  if (typeof until === "function") return until;
  switch (until) {
    case "terminal":
      return (t) => isTerminal(t.state);
    case "input_required":
      return (t) => t.state === TaskState.INPUT_REQUIRED || isTerminal(t.state);
    case "running":
      return (t) => t.state !== TaskState.QUEUED;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** A JSON value as google.protobuf.Value. */
export function jsonValue(value: JsonValue | undefined) {
  return value === undefined ? undefined : fromJson(ValueSchema, value);
}

function duration(ms: number | undefined): Duration | undefined {
  return ms === undefined ? undefined : durationFromMs(ms);
}

export function createClientWithTransport(transport: Transport): AgentdClient {
  const agents = createClient(AgentService, transport);
  const tasks = createClient(TaskService, transport);
  const webhooks = createClient(WebhookService, transport);
  const auth = createClient(AuthService, transport);

  async function* watch(taskId: string, opts: WatchOptions = {}): AsyncGenerator<TaskEvent> {
    let cursor = BigInt(opts.afterSequence ?? 0);
    const initial = opts.initialBackoffMs ?? 200;
    const max = opts.maxBackoffMs ?? 10_000;
    let failures = 0;
    for (;;) {
      let lastError: AgentdError | undefined;
      try {
        const stream = tasks.watchTask({ taskId, afterSequence: cursor }, { signal: opts.signal });
        for await (const res of stream) {
          failures = 0;
          const event = res.event;
          // A replay after a reconnect never repeats what was already yielded.
          if (!event || event.sequence <= cursor) continue;
          cursor = event.sequence;
          yield event;
          if (event.event.case === "stateChange" && isTerminal(event.event.value.state)) return;
        }
        // Ended without the terminal event: either the task had already ended and the cursor is at (or
        // past) its last event, which the server answers by completing at once, or a proxy or a server
        // closing cut it. Only the second is resumed; the first would reconnect forever.
        const { task } = await tasks.getTask({ taskId }, { signal: opts.signal });
        if (task && isTerminal(task.state) && task.lastSequence <= cursor) return;
      } catch (err) {
        lastError = toAgentdError(err);
        if (opts.signal?.aborted) throw lastError;
        if (!isTransient(lastError)) throw lastError;
      }
      if (opts.signal?.aborted) return;
      failures++;
      if (opts.maxRetries !== undefined && failures > opts.maxRetries) {
        throw lastError ?? new Error(`watch of ${taskId} ended without its terminal event ${failures} times`);
      }
      const base = Math.min(max, initial * 2 ** (failures - 1));
      const delayMs = Math.max(lastError?.retryDelayMs ?? 0, Math.round(base / 2 + Math.random() * (base / 2)));
      opts.onReconnect?.({ attempt: failures, afterSequence: cursor, delayMs, error: lastError });
      await sleep(delayMs, opts.signal);
      if (opts.signal?.aborted) return;
    }
  }

  async function waitFor(taskId: string, opts: { until?: Until; signal?: AbortSignal } = {}): Promise<Task> {
    const done = untilPredicate(opts.until);
    const { task } = await tasks.getTask({ taskId }, { signal: opts.signal });
    if (!task) throw new Error(`GetTask returned no task for ${taskId}`);
    if (done(task)) return task;
    // The log's state changes carry the task as it was; watching from now sees every later one.
    for await (const event of watch(taskId, { afterSequence: task.lastSequence, signal: opts.signal })) {
      if (event.event.case === "stateChange" && event.event.value.task && done(event.event.value.task))
        return event.event.value.task;
    }
    opts.signal?.throwIfAborted();
    const { task: last } = await tasks.getTask({ taskId });
    return last!;
  }

  async function runAndWait(request: RunRequest, opts: { until?: Until; signal?: AbortSignal } = {}): Promise<Task> {
    const { task } = await tasks.createTask(
      {
        agent: request.agent,
        input: jsonValue(request.input),
        requestId: request.requestId ?? "",
        labels: request.labels ?? {},
        timeout: duration(request.timeoutMs),
      },
      { signal: opts.signal },
    );
    return waitFor(task!.id, opts);
  }

  return { agents, tasks, webhooks, auth, watch, waitFor, runAndWait };
}
