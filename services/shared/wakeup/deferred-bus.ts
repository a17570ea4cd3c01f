// A wake-up bus whose Postgres connection comes later: a replica that starts
// without a writable primary serves (UNAVAILABLE) before it can LISTEN. Until
// the real bus is attached, hints stay in this process (nothing can commit
// meanwhile, so nothing is missed across processes); subscriptions made
// before are kept and hear the real bus once it is attached.
import { LocalListeners, type WakeupBus, type WakeupTopic } from "./bus.js";

const TOPICS: readonly WakeupTopic[] = ["task", "queue", "delivery"];

export interface DeferredWakeupBus extends WakeupBus {
  /** From now on publishes go to `bus`, and its hints reach every subscriber. Once only. */
  attach(bus: WakeupBus): void;
}

export function createDeferredWakeupBus(): DeferredWakeupBus {
  const listeners = new LocalListeners();
  let real: WakeupBus | undefined;
  let closed = false;
  return {
    attach(bus) {
      if (real) throw new Error("the wake-up bus is attached already");
      real = bus;
      for (const topic of TOPICS) bus.subscribe(topic, (id, origin) => listeners.emit(topic, id, origin));
      if (closed) void bus.close();
    },
    publish(topic, id) {
      if (closed) return;
      if (real) real.publish(topic, id);
      else queueMicrotask(() => listeners.emit(topic, id));
    },
    subscribe: (topic, listener) => listeners.add(topic, listener),
    async close() {
      closed = true;
      await real?.close();
    },
  };
}
