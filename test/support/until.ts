// The one polling helper of the tests and benchmarks: asks `probe` again every `everyMs` until
// `ok` holds for its answer, and fails after `ms` naming `what` and the last answer (or error) seen.
// Bounds are generous on purpose: a loaded CI machine is slow, and only a failure waits them out.

export interface UntilOptions {
  /** Fail after this long; default 10 s. */
  ms?: number;
  /** Pause between probes; default 50 ms. */
  everyMs?: number;
  /** What is awaited, for the failure message. */
  what?: string;
  /** A probe that throws means "not yet" (e.g. while a database is away); by default the error fails the wait. */
  retryErrors?: boolean;
}

/** Polls `probe` until `ok(answer)`; returns that answer. A number for `options` is `ms`. */
export async function until<T>(
  probe: () => T | Promise<T>,
  ok: (answer: T) => boolean,
  options: UntilOptions | number = {},
): Promise<T> {
  const {
    ms = 10_000,
    everyMs = 50,
    what = "condition",
    retryErrors = false,
  } = typeof options === "number" ? { ms: options } : options;
  const deadline = Date.now() + ms;
  let last: { answer: T } | { error: unknown } | undefined;
  for (;;) {
    try {
      const answer = await probe();
      if (ok(answer)) return answer;
      last = { answer };
    } catch (error) {
      if (!retryErrors) throw error;
      last = { error };
    }
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms; last: ${describe(last)}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

function describe(last: { answer: unknown } | { error: unknown } | undefined): string {
  if (last === undefined) return "nothing";
  if ("error" in last)
    return `error ${last.error instanceof Error ? last.error.message : String(last.error)}`.slice(0, 500);
  let text: string | undefined;
  try {
    text = JSON.stringify(last.answer, (_k, x) => (typeof x === "bigint" ? String(x) : x));
  } catch {
    // circular: fall back to String()
  }
  return (text ?? String(last.answer)).slice(0, 500);
}
