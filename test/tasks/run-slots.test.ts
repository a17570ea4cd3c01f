// This replica's room for Run-like work, alone: no database, no server.
import { describe, expect, it } from "vitest";
import { RunSlots } from "../../services/agent/tasks/run-slots.js";

describe("run slots", () => {
  it("gives out at most `max` slots, and one more once one is given back", () => {
    const runs = new RunSlots(2);
    const a = runs.acquire();
    const b = runs.acquire();
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    expect(runs.acquire()).toBeUndefined();
    expect(runs.active).toBe(2);
    a!.release();
    expect(runs.active).toBe(1);
    expect(runs.acquire()).toBeDefined();
  });

  it("a slot given back twice counts once", () => {
    const runs = new RunSlots(1);
    const slot = runs.acquire()!;
    slot.release();
    slot.release();
    expect(runs.active).toBe(0);
    expect(runs.acquire()).toBeDefined();
    expect(runs.acquire()).toBeUndefined();
  });
});
