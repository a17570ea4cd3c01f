// Follows one task to its end: its events rendered as they come, resumed by the
// typed client after a dropped connection or a server restart; on a terminal an
// input request is asked and answered here. Ctrl-C detaches (the task goes on)
// unless --cancel-on-interrupt. Resolves with the exit code.
import { createInterface } from "node:readline/promises";
import type { JsonValue } from "@bufbuild/protobuf";
import { type AgentdClient, isTerminal, jsonValue } from "../../../client/index.js";
import { type InputRequest, type Task, TaskState } from "../../../gen/agentd/v1/task_pb.js";
import { createSchemaCompiler } from "../../agent/agents/json-schema.js";
import type { EventRenderer, Out } from "./render.js";

export const EXIT = { succeeded: 0, failed: 1, usage: 2, rpc: 3, notEnded: 4, detached: 130 } as const;

export interface FollowOptions {
  afterSequence?: bigint;
  renderer: EventRenderer;
  out: Out;
  /** Ask input requests on this terminal. */
  interactive: boolean;
  cancelOnInterrupt: boolean;
  /** Connection flags the user gave (e.g. `--url …`), repeated in the re-attach command; never the key. */
  reattachFlags?: string;
}

export function exitCodeFor(task: Task | undefined): number {
  if (task?.state === TaskState.SUCCEEDED) return EXIT.succeeded;
  if (task && isTerminal(task.state)) return EXIT.failed;
  return EXIT.notEnded;
}

export async function followTask(client: AgentdClient, taskId: string, opts: FollowOptions): Promise<number> {
  const abort = new AbortController();
  let cursor = opts.afterSequence ?? 0n;
  let interrupted = false;
  const onInterrupt = () => {
    if (interrupted) process.exit(EXIT.detached);
    interrupted = true;
    abort.abort();
  };
  process.on("SIGINT", onInterrupt);
  try {
    let last: Task | undefined;
    const events = client.watch(taskId, {
      afterSequence: cursor,
      signal: abort.signal,
      onReconnect: ({ afterSequence, delayMs, error }) => {
        opts.renderer.pause();
        opts.out.stderr.write(
          `agentd: stream of ${taskId} dropped (${error?.codeName ?? "ended early"}); resuming after sequence ${afterSequence} in ${delayMs} ms\n`,
        );
      },
    });
    try {
      for await (const event of events) {
        cursor = event.sequence;
        opts.renderer.event(event);
        if (event.event.case === "stateChange" && event.event.value.task) last = event.event.value.task;
        // The log has the request, then the state change to INPUT_REQUIRED (its snapshot holds the request).
        const change = event.event.case === "stateChange" ? event.event.value : undefined;
        if (opts.interactive && change?.state === TaskState.INPUT_REQUIRED && change.task?.inputRequest) {
          await answerIfPending(client, taskId, event.sequence, change.task.inputRequest, opts, abort.signal);
        }
      }
    } catch (err) {
      if (!interrupted) throw err;
    }
    if (interrupted) {
      opts.renderer.pause();
      if (opts.cancelOnInterrupt) {
        const { task } = await client.tasks.cancelTask({ taskId });
        opts.out.stderr.write(`agentd: cancelled ${taskId}\n`);
        return exitCodeFor(task) === EXIT.notEnded ? EXIT.failed : exitCodeFor(task);
      }
      opts.out.stderr.write(
        `agentd: detached from ${taskId}; it keeps running. Re-attach with:\n  agentd tasks watch ${taskId} --after ${cursor}${opts.reattachFlags ? ` ${opts.reattachFlags}` : ""}\n`,
      );
      return EXIT.detached;
    }
    if (!last || !isTerminal(last.state)) last = (await client.tasks.getTask({ taskId })).task;
    opts.renderer.finish(last);
    return exitCodeFor(last);
  } finally {
    process.off("SIGINT", onInterrupt);
  }
}

/** Asks the question when it is still the pending one (a replayed, answered request is skipped). */
async function answerIfPending(
  client: AgentdClient,
  taskId: string,
  sequence: bigint,
  request: InputRequest,
  opts: FollowOptions,
  signal: AbortSignal,
): Promise<void> {
  const { task } = await client.tasks.getTask({ taskId });
  if (task?.state !== TaskState.INPUT_REQUIRED || task.lastSequence !== sequence) return;
  opts.renderer.pause();
  // The server checks the answer with the same compiler; checking here lets the user retry at once.
  const schema = request.schema ?? {};
  const validate = createSchemaCompiler().compile(schema, "answer");
  const rl = createInterface({ input: process.stdin, output: opts.out.stderr as NodeJS.WritableStream });
  try {
    for (;;) {
      const text = await rl.question(`${request.prompt}\n(answer as JSON; schema ${JSON.stringify(schema)})\n> `, {
        signal,
      });
      const value = parseAnswer(text);
      const violations = validate(value);
      if (violations.length === 0) {
        await client.tasks.provideInput({ taskId, value: jsonValue(value), requestId: `cli-${taskId}-${sequence}` });
        return;
      }
      opts.out.stderr.write(
        `not a valid answer: ${violations.map((v) => `${v.field}: ${v.description}`).join("; ")}\n`,
      );
    }
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  } finally {
    rl.close();
  }
}

/** JSON when it parses, the text itself otherwise (so a plain word answers a string question). */
function parseAnswer(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text.trim();
  }
}
