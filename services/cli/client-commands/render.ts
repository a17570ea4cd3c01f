// How a task's events look: NDJSON (proto3 JSON, one event a line, nothing
// else on stdout) when stdout is not a terminal or with --json; on a terminal
// a live progress bar (cli-progress, on stderr), streamed text as it arrives,
// one line per tool call, artifact and log, and the output pretty printed.
import { type DescMessage, type JsonValue, type MessageShape, toJson } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { SingleBar } from "cli-progress";
import { type Task, type TaskEvent, TaskEventSchema, TaskState } from "../../../gen/agentd/v1/task_pb.js";

export interface Out {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface EventRenderer {
  event(event: TaskEvent): void;
  /** Clears the live parts before something else is written (a prompt, a notice). */
  pause(): void;
  /** After the terminal event: the output or the error. */
  finish(task: Task | undefined): void;
}

/** A message as proto3 JSON: pretty on a terminal, one line otherwise. */
export function printMessage<D extends DescMessage>(
  out: Out,
  schema: D,
  message: MessageShape<D>,
  pretty: boolean,
): void {
  const json = toJson(schema, message, { alwaysEmitImplicit: false });
  out.stdout.write(`${JSON.stringify(json, null, pretty ? 2 : undefined)}\n`);
}

function stateName(state: TaskState): string {
  return TaskState[state] ?? String(state);
}

export function createNdjsonRenderer(out: Out): EventRenderer {
  return {
    event(event) {
      out.stdout.write(`${JSON.stringify(toJson(TaskEventSchema, event))}\n`);
    },
    pause() {},
    finish() {},
  };
}

/** One line for an event that is not streamed text (also used by `tasks events` on a terminal). */
export function eventLine(event: TaskEvent): string | undefined {
  const e = event.event;
  switch (e.case) {
    case "stateChange":
      return `● ${stateName(e.value.state).toLowerCase()}`;
    case "toolCall": {
      const args = e.value.arguments ? JSON.stringify(toJsonValue(e.value.arguments)) : "";
      return `⚙ tool ${e.value.name}(${truncate(args, 80)})${e.value.error ? ` failed: ${e.value.error}` : ""}`;
    }
    case "artifact": {
      const size =
        e.value.content.case === "text"
          ? `${e.value.content.value.length} chars`
          : `${e.value.content.value?.length ?? 0} bytes`;
      return `▣ artifact ${e.value.name} (${e.value.mimeType || "?"}, ${size})`;
    }
    case "log":
      return `· ${e.value.level}: ${e.value.message}`;
    case "inputRequest":
      return `? ${e.value.prompt}`;
    case "progress":
      return `… ${Math.round(e.value.percent)}% ${e.value.message}`;
    case "delta":
      return e.value.text;
    default:
      return undefined;
  }
}

function toJsonValue(value: Value): JsonValue {
  return toJson(ValueSchema, value);
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function createTerminalRenderer(out: Out, opts: { taskId: string }): EventRenderer {
  let bar: SingleBar | undefined;
  let barValue = 0;
  let barMessage = "";
  let midLine = false; // streamed text written without its newline yet

  const endLine = () => {
    if (midLine) out.stdout.write("\n");
    midLine = false;
  };
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
  };
  const showBar = () => {
    if (bar) {
      bar.update(barValue, { message: barMessage });
      return;
    }
    bar = new SingleBar({
      format: "{bar} {percentage}% {message}",
      stream: out.stderr as NodeJS.WriteStream,
      clearOnComplete: true,
      hideCursor: false,
      barsize: 30,
      noTTYOutput: false,
    });
    bar.start(100, barValue, { message: barMessage });
  };
  const line = (text: string) => {
    stopBar();
    endLine();
    out.stdout.write(`${text}\n`);
  };

  return {
    event(event) {
      const e = event.event;
      switch (e.case) {
        case "progress":
          barValue = Math.max(
            0,
            Math.min(
              100,
              Math.round(e.value.percent || (e.value.totalSteps ? (100 * e.value.step) / e.value.totalSteps : 0)),
            ),
          );
          barMessage = e.value.message;
          if (!midLine) showBar();
          return;
        case "delta":
          stopBar();
          out.stdout.write(e.value.text);
          midLine = !e.value.text.endsWith("\n");
          return;
        case "stateChange":
          if (e.value.state === TaskState.RUNNING || e.value.state === TaskState.QUEUED) {
            line(`● ${opts.taskId} ${stateName(e.value.state).toLowerCase()}`);
          }
          return;
        default: {
          const text = eventLine(event);
          if (text) line(text);
        }
      }
    },
    pause() {
      stopBar();
      endLine();
    },
    finish(task) {
      stopBar();
      endLine();
      if (!task) return;
      if (task.state === TaskState.SUCCEEDED) {
        out.stderr.write(`✔ ${task.id} succeeded\n`);
        const output = task.output ? toJsonValue(task.output) : null;
        out.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
      } else if (task.state === TaskState.FAILED) {
        out.stderr.write(`✘ ${task.id} failed: ${task.error?.code ?? ""} ${task.error?.message ?? ""}\n`);
      } else if (task.state === TaskState.CANCELED) {
        out.stderr.write(`✘ ${task.id} cancelled\n`);
      }
    },
  };
}
