// Structured JSON logs (pino). Context (task id, tenant, request id) goes in as
// fields via child loggers, never pasted into the message.
import { pino } from "pino";

export type Logger = pino.Logger;

export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.AGENTD_LOG_LEVEL ?? "info",
      name: opts.name ?? "agentd",
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    standardOutput(),
  );
}

/** A logger that drops everything: the default for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

type SonicBoom = ReturnType<typeof pino.destination>;

/** SonicBoom's default `maxWrite`, in characters (log lines are mostly ASCII). */
const MAX_WRITE = 16 * 1024;

/**
 * Standard output as every logger of the process writes to it: pino's asynchronous destination
 * (SonicBoom), given the lines logged in one turn of the event loop together, in writes of up to
 * 16 KiB. Line by line, SonicBoom re-measures its whole pending text (`Buffer.byteLength` of a
 * growing string) at every write made while one is in flight, which copies it once per line: under
 * load, 7.7 of the 10.6 KiB allocated per access-log line (BENCHMARKS.md, "Warm processes"). Lines
 * keep their order. At exit, SonicBoom's pending text is flushed and then this turn's, both
 * synchronously (an asynchronous write started then would never finish).
 */
class TurnBatchedOutput {
  private readonly pending: string[] = [];
  private scheduled = false;

  constructor(private readonly out: SonicBoom) {
    process.on("exit", () => this.exiting());
  }

  write(line: string): void {
    this.pending.push(line);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(writeTurn, this);
  }

  /** pino's `logger.flush(cb)`: this turn's lines, then SonicBoom's own flush. */
  flush(cb?: (err?: Error) => void): void {
    this.writeTurn();
    this.out.flush(cb);
  }

  /** This turn's lines, in writes of at most SonicBoom's own largest (an asynchronous write cut
   * short by the process exiting loses no more than before). */
  writeTurn(): void {
    this.scheduled = false;
    let text = "";
    for (const line of this.pending) {
      if (text.length > 0 && text.length + line.length > MAX_WRITE) {
        this.out.write(text);
        text = "";
      }
      text += line;
    }
    this.pending.length = 0;
    if (text) this.out.write(text);
  }

  private exiting(): void {
    const text = this.pending.join("");
    this.pending.length = 0;
    // Either may find standard output closed or broken (EPIPE): nothing more can be written then.
    try {
      this.out.flushSync();
    } catch {}
    try {
      if (text) pino.destination({ dest: 1, sync: true }).write(text);
    } catch {}
  }
}

function writeTurn(output: TurnBatchedOutput): void {
  output.writeTurn();
}

let stdout: TurnBatchedOutput | undefined;

/** One per process, made with its first logger. */
function standardOutput(): TurnBatchedOutput {
  stdout ??= new TurnBatchedOutput(pino.destination({ dest: 1, sync: false }));
  return stdout;
}
