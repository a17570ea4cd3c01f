// Who caused a write: the API key of the RPC being served. The RPC observer
// opens the scope; the task writer stamps each event it appends with the key id
// (`task_events.actor`, `TaskEvent.actor`). Work the service does on its own —
// runs, sweeps — happens outside any scope, so its events carry no actor.
import { AsyncLocalStorage } from "node:async_hooks";

/** The actor of a scope: its key id is read at each write (the key is known only once authenticated). */
export interface Actor {
  actorKeyId(): string | undefined;
}

const scope = new AsyncLocalStorage<Actor>();

/** Runs `fn(...args)` with `actor` as the actor. The arguments are passed through (as
 * AsyncLocalStorage.run does) so that a caller entering the scope for every message of a
 * stream needs no closure per message. */
export function withActor<A extends unknown[], T>(actor: Actor, fn: (...args: A) => T, ...args: A): T {
  return scope.run(actor, fn, ...args);
}

/** Runs `fn` outside any actor scope (work started by, but not done for, an RPC). */
export function withoutActor<T>(fn: () => T): T {
  return scope.exit(fn);
}

/** The key id of the RPC being served, or null. */
export function currentActor(): string | null {
  return scope.getStore()?.actorKeyId() ?? null;
}
