// Who caused a write: the API key of the RPC being served. The RPC observer
// opens the scope; the task writer stamps each event it appends with the key id
// (`task_events.actor`, `TaskEvent.actor`). Work the service does on its own —
// runs, sweeps — happens outside any scope, so its events carry no actor.
import { AsyncLocalStorage } from "node:async_hooks";

const scope = new AsyncLocalStorage<() => string | undefined>();

/** Runs `fn` with `keyId()` (read at each write: the key is known only once authenticated) as the actor. */
export function withActor<T>(keyId: () => string | undefined, fn: () => T): T {
  return scope.run(keyId, fn);
}

/** Runs `fn` outside any actor scope (work started by, but not done for, an RPC). */
export function withoutActor<T>(fn: () => T): T {
  return scope.exit(fn);
}

/** The key id of the RPC being served, or null. */
export function currentActor(): string | null {
  return scope.getStore()?.() ?? null;
}
