// TaskService at the edge: parse and check the request, call one use case, map the result.
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  CancelTaskResponseSchema,
  DeleteTaskResponseSchema,
  TaskService,
  type WatchTaskRequest,
} from "../../../gen/agentd/v1/task_service_pb.js";
import { notFound } from "../../shared/errors.js";
import { isId } from "../../shared/ids.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import { findTask } from "../store/find-task.js";
import { listEvents } from "../store/list-events.js";
import { listTasks } from "../store/list-tasks.js";
import type { WatchItem, WatchStream } from "../streams/event-hub.js";
import { connectionKey, type StreamSlot } from "../streams/stream-limits.js";
import type { StreamingDeps } from "../streams/streaming.js";
import { cancelTask } from "../tasks/cancel-task.js";
import { createTask } from "../tasks/create-task.js";
import { deleteTask } from "../tasks/delete-task.js";
import type { TaskDeps } from "../tasks/deps.js";
import { provideInput } from "../tasks/provide-input.js";
import { waitForTask } from "../tasks/wait-for-task.js";
import { toTask, toTaskEvent } from "../wire/convert.js";
import { principalOf } from "./interceptors.js";
import { createPageTokens, cursors, databasePageTokenKey } from "./page-token.js";
import {
  parseAfterSequence,
  parseIdField,
  parseInputAnswer,
  parseNewTask,
  parsePageSize,
  parseTaskFilter,
  parseWaitTimeout,
} from "./request-fields.js";
import { watchResponse } from "./stream-responses.js";

const WAIT_DEFAULT_MS = 30_000;
const WAIT_MAX_MS = 60_000;

export interface HandlerLimits {
  maxInputDepth: number;
}

function taskKey(ctx: HandlerContext, taskId: string): TaskKey {
  return { tenantId: principalOf(ctx).tenantId, taskId: parseIdField(taskId, "task_id", "task") };
}

export function taskServiceRoutes(deps: TaskDeps, limits: HandlerLimits, streams: StreamingDeps) {
  const loadTask = async (key: TaskKey) => {
    const task = await findTask(deps.sql, key);
    if (!task) throw notFound("task", key.taskId);
    return task;
  };
  const pageTokens = createPageTokens(databasePageTokenKey(deps.sql));

  return (router: ConnectRouter) =>
    router.service(TaskService, {
      async createTask(req, ctx) {
        const { tenantId } = principalOf(ctx);
        const request = parseNewTask(req, limits);
        const { task } = await createTask(deps, tenantId, request, { kind: "task" });
        return { task: toTask(task) };
      },

      async getTask(req, ctx) {
        return { task: toTask(await loadTask(taskKey(ctx, req.taskId))) };
      },

      async listTasks(req, ctx) {
        const { tenantId } = principalOf(ctx);
        const pageSize = parsePageSize(req.pageSize, { default: 50, max: 1000 });
        const filter = parseTaskFilter(req);
        const query = { tenantId, ...filter };
        const cursor = await pageTokens.decode(req.pageToken, query, isId);
        const rows = await listTasks(deps.sql, tenantId, filter, { beforeTaskId: cursor, limit: pageSize + 1 });
        const page = rows.slice(0, pageSize);
        const last = page.at(-1);
        return {
          tasks: page.map(toTask),
          nextPageToken: rows.length > pageSize && last ? await pageTokens.encode(last.task_id, query) : "",
        };
      },

      async waitTask(req, ctx) {
        const key = taskKey(ctx, req.taskId);
        let timeoutMs = parseWaitTimeout(req.timeout, { default: WAIT_DEFAULT_MS, max: WAIT_MAX_MS });
        // Answer a little before the caller's own deadline, so it gets the task rather than an error.
        const callerLeft = ctx.timeoutMs();
        if (callerLeft !== undefined) timeoutMs = Math.max(0, Math.min(timeoutMs, callerLeft - 50));
        const task = await waitForTask(deps, key, { timeoutMs, signal: ctx.signal });
        if (!task) throw notFound("task", key.taskId);
        return { task: toTask(task) };
      },

      async cancelTask(req, ctx) {
        const task = await cancelTask(deps, taskKey(ctx, req.taskId));
        return create(CancelTaskResponseSchema, { task: toTask(task) });
      },

      async deleteTask(req, ctx) {
        await deleteTask(deps, taskKey(ctx, req.taskId));
        return create(DeleteTaskResponseSchema, {});
      },

      async listTaskEvents(req, ctx) {
        const key = taskKey(ctx, req.taskId);
        const pageSize = parsePageSize(req.pageSize, { default: 100, max: 1000 });
        const afterSequence = parseAfterSequence(req.afterSequence);
        const query = { tenantId: key.tenantId, taskId: key.taskId, after: String(afterSequence) };
        const cursor = await pageTokens.decode(req.pageToken, query, cursors.sequence);
        const after = cursor !== null ? Number(cursor) : afterSequence;
        await loadTask(key);
        const events = await listEvents(deps.sql, key, after, pageSize + 1);
        const page = events.slice(0, pageSize);
        const last = page.at(-1);
        return {
          events: page.map((e) => toTaskEvent(key.taskId, e)),
          nextPageToken: events.length > pageSize && last ? await pageTokens.encode(String(last.sequence), query) : "",
        };
      },

      async provideInput(req, ctx) {
        const key = taskKey(ctx, req.taskId);
        const task = await provideInput(deps, key, parseInputAnswer(req, "value", limits.maxInputDepth));
        return { task: toTask(task) };
      },

      watchTask(req, ctx) {
        return new TaskWatch(req, ctx, streams, loadTask);
      },
    });
}

type WatchTaskResponseInit = ReturnType<typeof watchResponse>;
const WATCH_DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * A WatchTask stream: the hub's watch with the stream's slot, as a plain iterator object rather
 * than an async generator, which an idle stream would keep suspended (frame, register file, resume
 * closures) for its whole life. As the generator did, it checks the request and takes its slot at
 * the first pull, and gives the slot back when it ends, fails or is returned.
 */
class TaskWatch implements AsyncIterableIterator<WatchTaskResponseInit, undefined> {
  private request: { req: WatchTaskRequest; ctx: HandlerContext } | undefined;
  private slot: StreamSlot | undefined;
  private watch: WatchStream | undefined;
  private taskId = "";
  private finished = false;

  constructor(
    req: WatchTaskRequest,
    ctx: HandlerContext,
    private readonly streams: StreamingDeps,
    private readonly loadTask: (key: TaskKey) => Promise<TaskRow>,
  ) {
    this.request = { req, ctx };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<WatchTaskResponseInit, undefined>> {
    if (this.finished) return Promise.resolve(WATCH_DONE);
    const watch = this.watch;
    if (!watch) return this.start();
    // No async frame of its own: one reaction on the hub's pull while the stream idles.
    return watch.next().then(
      (result) => this.map(result),
      (error: unknown) => this.fail(error),
    );
  }

  async return(): Promise<IteratorResult<WatchTaskResponseInit, undefined>> {
    const watch = this.end();
    await watch?.return();
    return WATCH_DONE;
  }

  private async start(): Promise<IteratorResult<WatchTaskResponseInit, undefined>> {
    const { req, ctx } = this.request!;
    this.request = undefined;
    try {
      const { tenantId } = principalOf(ctx);
      const key = taskKey(ctx, req.taskId);
      const after = parseAfterSequence(req.afterSequence);
      this.slot = this.streams.limits.admit("watch_task", tenantId, ctx.values.get(connectionKey));
      const task = await this.loadTask(key);
      if (this.finished) return WATCH_DONE;
      this.taskId = key.taskId;
      this.watch = this.streams.hub.watch(task, after, ctx.signal);
    } catch (error) {
      return this.fail(error);
    }
    return this.next();
  }

  private map(result: IteratorResult<WatchItem, void>): IteratorResult<WatchTaskResponseInit, undefined> {
    if (result.done === true) {
      this.end();
      return WATCH_DONE;
    }
    return { done: false, value: watchResponse(this.taskId, result.value) };
  }

  private fail(error: unknown): never {
    this.end();
    throw error;
  }

  /** Ends the stream: the slot goes back; the watch (if any) is for the caller to return. */
  private end(): WatchStream | undefined {
    const watch = this.watch;
    this.finished = true;
    this.request = undefined;
    this.watch = undefined;
    this.slot?.release();
    this.slot = undefined;
    return watch;
  }
}
