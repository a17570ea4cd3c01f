// Teardown that fails on a leak, as connect-es's test servers do: a test that leaves a call, a
// stream or a busy connection open fails, instead of the server destroying it quietly and the next
// test inheriting a slow, half-closed client.
import type { OnePortServer } from "../../services/agent/server/one-port.js";
import { until } from "./until.js";

/** How long open connections get to end after the server begins closing. Generous: a loaded machine is slow. */
export const LEAK_BOUND_MS = 10_000;

/**
 * Begins the server's graceful close with a grace longer than the bound (so nothing is destroyed
 * before it looks), waits up to LEAK_BOUND_MS for every connection to end, then runs `finish` (the
 * rest of the shutdown; the server's close, called again, returns the same promise) and throws,
 * naming the count, if connections were still open.
 */
export async function closeFailingOnLeaks(
  server: OnePortServer,
  finish: () => Promise<void> = () => server.close(),
): Promise<void> {
  const closing = server.close({ graceMs: LEAK_BOUND_MS + 5_000 });
  const open = await until(
    () => server.openConnections(),
    (n) => n === 0,
    { ms: LEAK_BOUND_MS, everyMs: 20 },
  ).then(
    () => 0,
    () => server.openConnections(),
  );
  await finish();
  await closing;
  if (open > 0) {
    throw new Error(
      `${open} connection(s) still open ${LEAK_BOUND_MS / 1000} s after the server began closing: ` +
        "the test left a call or stream open (cancel it, or close its client)",
    );
  }
}
