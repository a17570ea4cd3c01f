// The wake-up bus (DESIGN.md rule 3): hints that something changed, carrying ids
// only. A lost hint only delays: every waiter also polls at a bounded interval.

/** What changed. `task`: a task's state or log (id = task id). `queue`: a task
 * became claimable. `delivery`: a webhook delivery became due. */
export type WakeupTopic = "task" | "queue" | "delivery";

export interface WakeupBus {
  /** Announces a change. Cheap and non-blocking; sends are coalesced. */
  publish(topic: WakeupTopic, id: string): void;
  /** Calls `listener` for every hint on `topic`; `origin` tells whether this process
   * published it or another one did. Returns the unsubscribe function. */
  subscribe(topic: WakeupTopic, listener: Listener): () => void;
  close(): Promise<void>;
}

/** Where a hint came from: this process, or another one through Postgres. */
export type HintOrigin = "local" | "remote";
type Listener = (id: string, origin: HintOrigin) => void;

/** Fan-out of hints to the listeners in this process. */
export class LocalListeners {
  private readonly byTopic = new Map<WakeupTopic, Set<Listener>>();

  add(topic: WakeupTopic, listener: Listener): () => void {
    let set = this.byTopic.get(topic);
    if (!set) {
      set = new Set();
      this.byTopic.set(topic, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  emit(topic: WakeupTopic, id: string, origin: HintOrigin = "local"): void {
    const set = this.byTopic.get(topic);
    if (!set) return;
    for (const listener of set) {
      // A listener's failure must not stop the others from hearing the hint.
      try {
        listener(id, origin);
      } catch {}
    }
  }
}

/** In-process bus: the only path under embedded PGlite, where NOTIFY does not
 * cross the socket. */
export function createLocalWakeupBus(): WakeupBus {
  const listeners = new LocalListeners();
  return {
    publish: (topic, id) => queueMicrotask(() => listeners.emit(topic, id)),
    subscribe: (topic, listener) => listeners.add(topic, listener),
    close: async () => {},
  };
}
