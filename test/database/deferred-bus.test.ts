// The wake-up bus of a replica that starts before it can LISTEN: hints stay
// local until the real bus is attached, and subscriptions made before then
// hear the real bus afterwards.
import { describe, expect, it } from "vitest";
import { createLocalWakeupBus, type HintOrigin } from "../../services/shared/wakeup/bus.js";
import { createDeferredWakeupBus } from "../../services/shared/wakeup/deferred-bus.js";

const tick = () => new Promise((r) => setTimeout(r, 5));

describe("the deferred wake-up bus", () => {
  it("delivers local hints before the real bus is attached, and the real bus's hints after", async () => {
    const bus = createDeferredWakeupBus();
    const heard: string[] = [];
    bus.subscribe("task", (id, origin: HintOrigin) => heard.push(`${id}/${origin}`));
    bus.publish("task", "a");
    await tick();
    expect(heard).toEqual(["a/local"]);

    const real = createLocalWakeupBus();
    let closed = false;
    bus.attach({
      ...real,
      close: async () => {
        closed = true;
      },
    });
    bus.publish("task", "b"); // through the real bus, and back
    await tick();
    expect(heard).toEqual(["a/local", "b/local"]);
    expect(() => bus.attach(real)).toThrow();
    await bus.close();
    expect(closed).toBe(true);
  });
});
