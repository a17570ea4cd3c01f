// Structured JSON logs (pino). Context (task id, tenant, request id) goes in as
// fields via child loggers, never pasted into the message.
import { pino } from "pino";

export type Logger = pino.Logger;

export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  return pino({
    level: opts.level ?? process.env.AGENTD_LOG_LEVEL ?? "info",
    name: opts.name ?? "agentd",
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** A logger that drops everything: the default for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
