// The delta buffer: the first text after a quiet spell is due at once; later text within the
// window is coalesced into one write.
import { describe, expect, it } from "vitest";
import { createDeltaBuffer } from "../../services/agent/runner/delta-buffer.js";

describe("delta buffer", () => {
  it("makes the first delta due at once, coalesces the following ones within the window", async () => {
    let clock = 1000;
    const writes: string[] = [];
    const buffer = createDeltaBuffer({
      windowMs: 30,
      maxChars: 8192,
      now: () => clock,
      onDue: () => writes.push(buffer.take()),
    });
    buffer.add("Hello");
    expect(writes).toEqual(["Hello"]);
    clock += 5;
    buffer.add(" wor");
    buffer.add("ld");
    expect(writes).toEqual(["Hello"]);
    await new Promise((r) => setTimeout(r, 60));
    expect(writes).toEqual(["Hello", " world"]);
    // After a quiet spell longer than the window, the next text goes at once again.
    clock += 100;
    buffer.add("!");
    expect(writes).toEqual(["Hello", " world", "!"]);
  });

  it("writes at once when the size cap is reached", () => {
    const writes: string[] = [];
    const buffer = createDeltaBuffer({ windowMs: 1000, maxChars: 4, onDue: () => writes.push(buffer.take()) });
    buffer.add("a");
    buffer.add("bc");
    buffer.add("def");
    expect(writes).toEqual(["a", "bcdef"]);
    buffer.take();
  });
});
