// When the claim loop claims again (claim-wakeups.ts): new work always wakes it, even work that
// came while it was claiming; a freed slot only when it waits for one.
import { describe, expect, it } from "vitest";
import { createClaimWakeups } from "../../services/agent/runner/claim-wakeups.js";

const LONG = 60_000; // a poll interval no test waits out

/** Whether `wait` has ended once pending callbacks and timers due now have run. */
async function ended(wait: Promise<void>): Promise<boolean> {
  let done = false;
  void wait.then(() => {
    done = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe("the claim loop's wake-ups", () => {
  it("end a wait for new work at a wake, not at a freed slot", async () => {
    const wakeups = createClaimWakeups();
    const wait = wakeups.wait(LONG, { forSlot: false });
    wakeups.slotFreed();
    expect(await ended(wait)).toBe(false);
    wakeups.wake();
    expect(await ended(wait)).toBe(true);
  });

  it("end a wait for a slot at a freed slot, and at a wake", async () => {
    const wakeups = createClaimWakeups();
    const forSlot = wakeups.wait(LONG, { forSlot: true });
    wakeups.slotFreed();
    expect(await ended(forSlot)).toBe(true);
    const again = wakeups.wait(LONG, { forSlot: true });
    wakeups.wake();
    expect(await ended(again)).toBe(true);
  });

  it("keep a wake that came between waits for the next wait, once", async () => {
    const wakeups = createClaimWakeups();
    wakeups.wake(); // new work while a claim was in flight
    wakeups.wake();
    expect(await ended(wakeups.wait(LONG, { forSlot: false }))).toBe(true);
    const next = wakeups.wait(LONG, { forSlot: false });
    expect(await ended(next)).toBe(false);
    wakeups.wake();
    await next;
  });

  it("forget a slot freed while no wait was on: the loop counts its free slots afresh before each claim", async () => {
    const wakeups = createClaimWakeups();
    wakeups.slotFreed();
    const wait = wakeups.wait(LONG, { forSlot: true });
    expect(await ended(wait)).toBe(false);
    wakeups.wake();
    await wait;
  });

  it("end a wait at the poll interval without any wake-up", async () => {
    const wakeups = createClaimWakeups();
    await wakeups.wait(1, { forSlot: false });
  });
});
