// `agentd agents|run|tasks|webhooks`: the terminal client, built on the typed
// client (client/). Output: proto3 JSON (pretty on a terminal), task events as
// NDJSON off a terminal or with --json. Exit codes: 0 succeeded, 1 failed or
// cancelled, 2 usage, 3 RPC error (code and reason on stderr), 4 not ended yet
// (`tasks wait`), 130 detached with Ctrl-C.
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import { jsonValue } from "../../../client/index.js";
import { GetAgentResponseSchema, ListAgentsResponseSchema } from "../../../gen/agentd/v1/agent_service_pb.js";
import { TaskState } from "../../../gen/agentd/v1/task_pb.js";
import {
  CancelTaskResponseSchema,
  CreateTaskResponseSchema,
  GetTaskResponseSchema,
  ListTasksResponseSchema,
  ProvideInputResponseSchema,
  WaitTaskResponseSchema,
} from "../../../gen/agentd/v1/task_service_pb.js";
import { createSchemaCompiler } from "../../agent/agents/json-schema.js";
import { ConfigError } from "../../shared/config.js";
import { action, collect, type Flags, out, pretty, print, withConnectionOptions } from "./command-kit.js";
import { type Connection, connect } from "./connection.js";
import { EXIT, exitCodeFor, followTask } from "./follow.js";
import { type InputFlags, readInput } from "./input.js";
import { createNdjsonRenderer, createTerminalRenderer, eventLine } from "./render.js";
import { registerWebhookCommands } from "./webhook-commands.js";

function parseSequence(text: string | undefined, name: string): bigint {
  if (text === undefined) return 0n;
  if (!/^\d+$/.test(text))
    throw new ConfigError(`invalid ${name} ${JSON.stringify(text)}: must be a whole number ≥ 0 (an event sequence)`);
  return BigInt(text);
}

function parseDurationMs(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!m) throw new ConfigError(`invalid ${name} ${JSON.stringify(text)}: use a duration like 500ms, 30s, 5m or 1h`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}

function parseLabels(pairs: string[] = []): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new ConfigError(`invalid --label ${JSON.stringify(pair)}: use key=value`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

const STATE_NAMES = ["queued", "running", "input_required", "succeeded", "failed", "canceled"];

function parseStates(states: string[] = []): TaskState[] {
  return states.map((s) => {
    const state = TaskState[s.toUpperCase() as keyof typeof TaskState];
    if (state === undefined || !STATE_NAMES.includes(s.toLowerCase())) {
      throw new ConfigError(`invalid --state ${JSON.stringify(s)}: one of ${STATE_NAMES.join(", ")}`);
    }
    return state;
  });
}

type TaskCreateFlags = Flags &
  InputFlags & { requestId?: string; label?: string[]; timeout?: string; maxAttempts?: string };

function taskOptions(command: Command): Command {
  return withConnectionOptions(command)
    .argument("<agent>", "The agent's name (see `agentd agents list`).")
    .argument("[key=value...]", "Input fields; values are JSON when they parse, text otherwise (a.b=1 nests).")
    .option("--input <json>", "The input as JSON.")
    .option("--input-file <file>", "Read the input (JSON) from a file, - for stdin.")
    .option("--request-id <id>", "Idempotency key: the same id returns the same task.")
    .option("--label <key=value>", "A label (repeatable).", collect)
    .option("--timeout <duration>", "Task deadline, e.g. 30s or 5m.");
}

async function createTask(conn: Connection, agent: string, pairs: string[], flags: TaskCreateFlags) {
  const input = await readInput(flags, pairs);
  const timeoutMs = parseDurationMs(flags.timeout, "--timeout");
  const { task } = await conn.client.tasks.createTask({
    agent,
    input: jsonValue(input),
    requestId: flags.requestId ?? "",
    labels: parseLabels(flags.label),
    timeout: timeoutMs === undefined ? undefined : durationFromMs(timeoutMs),
  });
  return task!;
}

async function follow(
  conn: Connection,
  taskId: string,
  flags: Flags & { cancelOnInterrupt?: boolean },
  afterSequence = 0n,
) {
  const terminal = pretty(flags);
  return followTask(conn.client, taskId, {
    afterSequence,
    out,
    renderer: terminal ? createTerminalRenderer(out, { taskId }) : createNdjsonRenderer(out),
    interactive: terminal && Boolean(process.stdin.isTTY),
    cancelOnInterrupt: Boolean(flags.cancelOnInterrupt),
    // So that the printed re-attach command reaches the same server; a key given as a flag is not echoed.
    reattachFlags: [
      flags.url !== undefined ? `--url ${flags.url}` : "",
      flags.data !== undefined ? `--data ${flags.data}` : "",
      flags.transport && flags.transport !== "grpc" ? `--transport ${flags.transport}` : "",
    ]
      .filter(Boolean)
      .join(" "),
  });
}

export function registerClientCommands(program: Command): void {
  registerAgentCommands(program);
  registerRunCommand(program);
  registerTaskCommands(program);
  registerWebhookCommands(program);
}

function registerAgentCommands(program: Command): void {
  const agents = program.command("agents").description("Agents on a running server (client).");
  withConnectionOptions(agents.command("list").description("List the agents.")).action(
    action(async (flags: Flags) => {
      const conn = await connect(flags);
      const res = await conn.client.agents.listAgents({ pageSize: 1000 });
      if (pretty(flags)) {
        for (const a of res.agents)
          process.stdout.write(`${a.name.padEnd(20)} ${a.version.padEnd(10)} ${a.description}\n`);
      } else print(flags, ListAgentsResponseSchema, res);
      return 0;
    }),
  );
  withConnectionOptions(
    agents.command("get").description("Show an agent with its input and output schemas.").argument("<name>"),
  ).action(
    action(async (name: string, flags: Flags) => {
      print(flags, GetAgentResponseSchema, await (await connect(flags)).client.agents.getAgent({ name }));
      return 0;
    }),
  );
}

function registerRunCommand(program: Command): void {
  taskOptions(
    program
      .command("run")
      .description(
        "Run an agent as a task and follow it to the end: live progress and output on a terminal, NDJSON events otherwise.",
      ),
  )
    .option("--cancel-on-interrupt", "Ctrl-C cancels the task (default: detach, the task goes on).")
    .action(
      action(async (agent: string, pairs: string[], flags: TaskCreateFlags & { cancelOnInterrupt?: boolean }) => {
        const conn = await connect(flags);
        const task = await createTask(conn, agent, pairs, flags);
        return follow(conn, task.id, flags);
      }),
    );
}

/** `tasks`: create, get, list, wait; watch, events; cancel, delete, input (registration order is help order). */
function registerTaskCommands(program: Command): void {
  const tasks = program.command("tasks").description("Tasks on a running server (client).");
  registerTaskQueryCommands(tasks);
  registerTaskFollowCommands(tasks);
  registerTaskWriteCommands(tasks);
}

function registerTaskQueryCommands(tasks: Command): void {
  taskOptions(
    tasks.command("create").description("Create a task and print it at once (it runs in the background)."),
  ).action(
    action(async (agent: string, pairs: string[], flags: TaskCreateFlags) => {
      const conn = await connect(flags);
      const task = await createTask(conn, agent, pairs, flags);
      if (pretty(flags)) print(flags, CreateTaskResponseSchema, { $typeName: "agentd.v1.CreateTaskResponse", task });
      else process.stdout.write(`${JSON.stringify({ task: { id: task.id, state: TaskState[task.state] } })}\n`);
      return 0;
    }),
  );
  withConnectionOptions(tasks.command("get").description("Show a task.").argument("<task-id>")).action(
    action(async (taskId: string, flags: Flags) => {
      print(flags, GetTaskResponseSchema, await (await connect(flags)).client.tasks.getTask({ taskId }));
      return 0;
    }),
  );
  withConnectionOptions(tasks.command("list").description("List tasks, newest first."))
    .option("--state <state>", `Only tasks in this state (repeatable): ${STATE_NAMES.join(", ")}.`, collect)
    .option("--agent <name>", "Only this agent's tasks.")
    .option("--label <key=value>", "Only tasks with this label (repeatable).", collect)
    .option("--page-size <n>", "Tasks per page (default 50).")
    .option("--page-token <token>", "The next_page_token of a previous page.")
    .action(
      action(
        async (
          flags: Flags & { state?: string[]; agent?: string; label?: string[]; pageSize?: string; pageToken?: string },
        ) => {
          const pageSize = flags.pageSize === undefined ? 50 : Number(flags.pageSize);
          if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000)
            throw new ConfigError(`invalid --page-size ${JSON.stringify(flags.pageSize)}: 1 to 1000`);
          const res = await (await connect(flags)).client.tasks.listTasks({
            states: parseStates(flags.state),
            agent: flags.agent ?? "",
            labels: parseLabels(flags.label),
            pageSize,
            pageToken: flags.pageToken ?? "",
          });
          print(flags, ListTasksResponseSchema, res);
          return 0;
        },
      ),
    );
  withConnectionOptions(
    tasks
      .command("wait")
      .description(
        "Wait until a task ends or needs input, then print it. Exit 0 succeeded, 1 failed/cancelled, 4 not ended (input required or --timeout passed).",
      )
      .argument("<task-id>"),
  )
    .option("--timeout <duration>", "Give up after this long, e.g. 30s (default 10m).")
    .action(
      action(async (taskId: string, flags: Flags & { timeout?: string }) => {
        const conn = await connect(flags);
        const deadline = Date.now() + (parseDurationMs(flags.timeout, "--timeout") ?? 600_000);
        for (;;) {
          const res = await conn.client.tasks.waitTask({
            taskId,
            timeout: durationFromMs(Math.max(1, Math.min(60_000, deadline - Date.now()))),
          });
          const state = res.task?.state;
          if (state === TaskState.INPUT_REQUIRED || exitCodeFor(res.task) !== EXIT.notEnded || Date.now() >= deadline) {
            print(flags, WaitTaskResponseSchema, res);
            return exitCodeFor(res.task);
          }
        }
      }),
    );
}

function registerTaskFollowCommands(tasks: Command): void {
  withConnectionOptions(
    tasks
      .command("watch")
      .description(
        "Follow a task's events live (resumes by itself after a dropped connection or a server restart). Ctrl-C detaches.",
      )
      .argument("<task-id>"),
  )
    .option("--after <sequence>", "Start after this event sequence (default 0: from the first event).")
    .option("--cancel-on-interrupt", "Ctrl-C cancels the task (default: detach, the task goes on).")
    .action(
      action(async (taskId: string, flags: Flags & { after?: string; cancelOnInterrupt?: boolean }) => {
        const after = parseSequence(flags.after, "--after");
        return follow(await connect(flags), taskId, flags, after);
      }),
    );
  withConnectionOptions(
    tasks
      .command("events")
      .description("Print a task's event log so far (NDJSON, or one line per event on a terminal).")
      .argument("<task-id>"),
  )
    .option("--after <sequence>", "Start after this event sequence.")
    .action(
      action(async (taskId: string, flags: Flags & { after?: string }) => {
        const conn = await connect(flags);
        const ndjson = createNdjsonRenderer(out);
        let pageToken = "";
        do {
          const page = await conn.client.tasks.listTaskEvents({
            taskId,
            afterSequence: parseSequence(flags.after, "--after"),
            pageSize: 500,
            pageToken,
          });
          for (const event of page.events) {
            if (pretty(flags))
              process.stdout.write(
                `${String(event.sequence).padStart(5)} ${event.event.case ?? "?"} ${eventLine(event) ?? ""}\n`,
              );
            else ndjson.event(event);
          }
          pageToken = page.nextPageToken;
        } while (pageToken);
        return 0;
      }),
    );
}

function registerTaskWriteCommands(tasks: Command): void {
  withConnectionOptions(tasks.command("cancel").description("Cancel a task.").argument("<task-id>")).action(
    action(async (taskId: string, flags: Flags) => {
      print(flags, CancelTaskResponseSchema, await (await connect(flags)).client.tasks.cancelTask({ taskId }));
      return 0;
    }),
  );
  withConnectionOptions(
    tasks.command("delete").description("Delete a task that has ended.").argument("<task-id>"),
  ).action(
    action(async (taskId: string, flags: Flags) => {
      await (await connect(flags)).client.tasks.deleteTask({ taskId });
      if (pretty(flags)) process.stderr.write(`deleted ${taskId}\n`);
      return 0;
    }),
  );
  withConnectionOptions(
    tasks
      .command("input")
      .description(
        "Answer a task's pending input request. The answer is checked against the request's schema before it is sent.",
      )
      .argument("<task-id>")
      .argument("[key=value...]", "The answer as fields (or --value JSON)."),
  )
    .option("--value <json>", "The answer as JSON, e.g. true or '{\"approved\":true}'.")
    .option("--request-id <id>", "Idempotency key for the answer.")
    .action(
      action(async (taskId: string, pairs: string[], flags: Flags & { value?: string; requestId?: string }) => {
        const value = await readInput({ ...(flags.value !== undefined ? { input: flags.value } : {}) }, pairs);
        if (value === undefined) throw new ConfigError("give the answer: --value JSON or key=value pairs");
        const conn = await connect(flags);
        const { task } = await conn.client.tasks.getTask({ taskId });
        const schema = task?.state === TaskState.INPUT_REQUIRED ? task.inputRequest?.schema : undefined;
        if (schema) {
          const violations = createSchemaCompiler().compile(schema, "value")(value);
          if (violations.length > 0) {
            throw new ConfigError(
              `the answer does not match the request's schema: ${violations.map((v) => `${v.field}: ${v.description}`).join("; ")}`,
            );
          }
        }
        const res = await conn.client.tasks.provideInput({
          taskId,
          value: jsonValue(value),
          requestId: flags.requestId ?? "",
        });
        print(flags, ProvideInputResponseSchema, res);
        return 0;
      }),
    );
}
