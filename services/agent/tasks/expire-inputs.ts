// The expiry sweep for input requests: a task waiting in INPUT_REQUIRED past its
// request's `expire_time` fails with INPUT_TIMEOUT. Every replica sweeps (rows are
// taken with SKIP LOCKED, so they share the work); the partial index
// `tasks_input_expiry` keeps the query cheap however many tasks wait. Precision:
// one interval (the poll interval, at most 2 s).
import type { Logger } from "../../shared/log.js";
import type { TaskWriter } from "../store/task-writer.js";
import { expireInput } from "./transitions.js";

const BATCH = 100;

export interface InputExpirySweep {
  stop(): Promise<void>;
}

export function startInputExpirySweep(
  deps: { writer: TaskWriter; logger: Logger },
  intervalMs: number,
): InputExpirySweep {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  // Must not throw: a failed sweep is logged and tried again next interval.
  async function sweep(): Promise<void> {
    try {
      for (;;) {
        const expired = await deps.writer.sweepExpiredInputs(BATCH, expireInput(new Date(), { checkTime: false }));
        for (const task of expired)
          deps.logger.info({ taskId: task.task_id, tenant: task.tenant_id }, "input request expired; task failed");
        if (expired.length < BATCH || stopped) return;
      }
    } catch (error) {
      deps.logger.warn({ err: error }, "input expiry sweep failed; will retry");
    }
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweep().finally(() => {
        running = undefined;
        schedule();
      });
    }, intervalMs);
  }
  schedule();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
