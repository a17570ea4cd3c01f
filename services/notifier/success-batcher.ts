// Group commit for successful attempts: while one batch is being written, the
// successes that finish meanwhile gather, and go out together in the next
// statement. Under load one round trip records many deliveries; when idle a
// success is written at once.
import type { Sql } from "../shared/db/database.js";
import { type Completion, type CompletionResult, completeSuccesses } from "./complete-delivery.js";

const MAX_BATCH = 500;

interface Waiting {
  completion: Completion;
  resolve(result: CompletionResult): void;
  reject(error: unknown): void;
}

export function createSuccessBatcher(sql: Sql): { record(c: Completion): Promise<CompletionResult> } {
  let waiting: Waiting[] = [];
  let writing = false;

  async function flush(): Promise<void> {
    writing = true;
    while (waiting.length > 0) {
      const batch = waiting.slice(0, MAX_BATCH);
      waiting = waiting.slice(batch.length);
      try {
        const fenced = await completeSuccesses(
          sql,
          batch.map((w) => w.completion),
        );
        for (const w of batch) {
          w.resolve(
            fenced.has(w.completion.delivery.delivery_id)
              ? { status: "fenced" }
              : { status: "recorded", state: "SUCCEEDED" },
          );
        }
      } catch (error) {
        for (const w of batch) w.reject(error);
      }
    }
    writing = false;
  }

  return {
    record(completion) {
      return new Promise<CompletionResult>((resolve, reject) => {
        waiting.push({ completion, resolve, reject });
        if (!writing) void flush();
      });
    },
  };
}
