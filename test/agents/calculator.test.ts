import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { evaluate } from "../../services/agent/agents/chat/calculator.js";

describe("calculator", () => {
  it.each([
    ["1 + 2 * 3", 7],
    ["(1 + 2) * 3", 9],
    ["2 ^ 3 ^ 2", 512],
    ["-2 ^ 2", -4],
    ["10 % 4 - -1", 3],
    ["sqrt(16) + max(1, 5, 3)", 9],
    ["1.5e3 / .5", 3000],
    ["round(pi * 100)", 314],
    ["17.5 * 4 / 100", 0.7],
  ])("%s = %d", (text, expected) => {
    expect(evaluate(text)).toBeCloseTo(expected, 10);
  });

  it.each([
    ["", /empty/],
    ["1 +", /end/],
    ["2 * (3", /expected "\)"/],
    ["1 / 0", /division by zero/],
    ["process.exit(1)", /unexpected character|unknown/],
    ["constructor", /unknown name/],
    ["alert(1)", /unknown function/],
    ["sqrt(1, 2)", /takes 1/],
    ["10 ^ 400", /finite/],
    ["(".repeat(200) + "1" + ")".repeat(200), /nested too deeply/],
  ])("rejects %s", (text, why) => {
    expect(() => evaluate(text)).toThrow(why);
  });

  it("agrees with JavaScript on sums and products of integers", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1000, max: 1000 }),
        fc.integer({ min: -1000, max: 1000 }),
        fc.integer({ min: 1, max: 50 }),
        (a, b, c) => {
          expect(evaluate(`${a} + ${b} * ${c} - (${a} - ${c})`)).toBe(a + b * c - (a - c));
        },
      ),
    );
  });
});
