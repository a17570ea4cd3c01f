// What every client command shares: the connection options, the exit-code wrapper, and printing.
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { type Command, Option } from "commander";
import { AgentdError } from "../../../client/index.js";
import { ConfigError } from "../../shared/config.js";
import type { ConnectionFlags } from "./connection.js";
import { EXIT } from "./follow.js";
import { type Out, printMessage } from "./render.js";

export type Flags = ConnectionFlags & { json?: boolean };

export const out: Out = { stdout: process.stdout, stderr: process.stderr };

export function withConnectionOptions(command: Command): Command {
  return command
    .option("--url <url>", 'Server URL. Env: AGENTD_URL (default: "http://127.0.0.1:8080")')
    .option("--key <key>", "API key. Env: AGENTD_API_KEY (default: <data>/dev-api-key when it exists)")
    .option("--data <dir>", 'Data folder holding dev-api-key. Env: AGENTD_DATA_DIR (default: "./.agentd")')
    .addOption(
      new Option("--transport <transport>", "Protocol to the server.").choices(["grpc", "connect"]).default("grpc"),
    )
    .option("--json", "Print JSON only (task events as NDJSON), as when stdout is not a terminal.");
}

export const pretty = (flags: Flags) => Boolean(process.stdout.isTTY) && !flags.json;

/** Runs a command body; turns failures into the documented exit codes. */
export function action<A extends unknown[]>(
  body: (...args: A) => Promise<number | undefined>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let code: number;
    try {
      code = (await body(...args)) ?? 0;
    } catch (err) {
      code = report(err);
    }
    // Open HTTP/2 sessions would keep the process alive.
    process.exit(code);
  };
}

function report(err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`agentd: ${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof AgentdError) {
    process.stderr.write(`agentd: ${err.codeName}${err.reason ? ` ${err.reason}` : ""}: ${err.rawMessage}\n`);
    for (const v of err.fieldViolations) process.stderr.write(`  ${v.field}: ${v.description}\n`);
    return EXIT.rpc;
  }
  process.stderr.write(`agentd: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT.failed;
}

export function print<D extends DescMessage>(flags: Flags, schema: D, message: MessageShape<D>): void {
  printMessage(out, schema, message, pretty(flags));
}

export const collect = (value: string, previous: string[] = []) => [...previous, value];
