// Ids (services/shared/ids.ts): UUIDv7 from a buffered random source.
import { describe, expect, it } from "vitest";
import { isId, newId, parseId } from "../../services/shared/ids.js";

describe("newId", () => {
  it("makes distinct version-7 UUIDs that increase within the process", () => {
    // Enough ids to refill the random buffer many times over.
    const ids = Array.from({ length: 5000 }, () => newId());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
    // The leading 48 bits are the creation time in milliseconds.
    const ms = Number.parseInt(ids.at(-1)!.replace(/-/g, "").slice(0, 12), 16);
    expect(Math.abs(ms - Date.now())).toBeLessThan(60_000);
  });

  it("are ids that parse", () => {
    const id = newId();
    expect(isId(id)).toBe(true);
    expect(parseId(id.toUpperCase())).toBe(id);
  });
});
