// Small helpers for agents that wait: a sleep that an AbortSignal cuts short.

/**
 * Resolves after `ms` milliseconds, or rejects with `signal.reason` as soon as the signal fires
 * (at once if it already has). The timer is cleared on abort, so nothing keeps the process alive.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Lets other work on the event loop run (timers, I/O, heartbeats) between CPU-bound phases. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}
