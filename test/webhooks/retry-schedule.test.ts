// The retry rules, pure: schedule with jitter, throttling minimum, Retry-After
// within bounds, 410 and the last attempt ending the delivery.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DestinationSlots } from "../../services/notifier/destination-slots.js";
import { jitter, nextAfterAttempt, parseRetryAfter, type RetryPolicy } from "../../services/notifier/retry-schedule.js";
import { loadConfig } from "../../services/shared/config.js";

const policy: RetryPolicy = { scheduleMs: [5000, 300000, 1800000], throttleMinMs: 60000, retryAfterMaxMs: 3600000 };
const opts = { retries: true, random: 0.5 };

describe("nextAfterAttempt", () => {
  it("follows the schedule, then gives up: attempts = 1 + schedule length", () => {
    const http500 = { kind: "http" as const, status: 500 };
    expect(nextAfterAttempt(http500, 1, policy, opts)).toEqual({ state: "PENDING", delayMs: 5000 });
    expect(nextAfterAttempt(http500, 2, policy, opts)).toEqual({ state: "PENDING", delayMs: 300000 });
    expect(nextAfterAttempt(http500, 3, policy, opts)).toEqual({ state: "PENDING", delayMs: 1800000 });
    expect(nextAfterAttempt(http500, 4, policy, opts)).toEqual({ state: "FAILED", gone: false });
    expect(nextAfterAttempt({ kind: "success", status: 200 }, 1, policy, opts)).toEqual({ state: "SUCCEEDED" });
  });

  it("jitters every delay by at most ±20 %", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 36_000_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (base, random) => {
          const d = jitter(base, random);
          expect(d).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
          expect(d).toBeLessThanOrEqual(Math.ceil(base * 1.2));
        },
      ),
    );
  });

  it("makes 429, 502, 503, 504 and timeouts wait at least the throttle minimum", () => {
    for (const status of [429, 502, 503, 504]) {
      expect(nextAfterAttempt({ kind: "http", status }, 1, policy, opts)).toEqual({ state: "PENDING", delayMs: 60000 });
    }
    expect(nextAfterAttempt({ kind: "timeout", status: 0 }, 1, policy, opts)).toEqual({
      state: "PENDING",
      delayMs: 60000,
    });
    // Not for other failures, and never shortening a longer scheduled delay.
    expect(nextAfterAttempt({ kind: "http", status: 500 }, 1, policy, opts)).toEqual({
      state: "PENDING",
      delayMs: 5000,
    });
    expect(nextAfterAttempt({ kind: "network", status: 0 }, 1, policy, opts)).toEqual({
      state: "PENDING",
      delayMs: 5000,
    });
    expect(nextAfterAttempt({ kind: "http", status: 503 }, 2, policy, opts)).toEqual({
      state: "PENDING",
      delayMs: 300000,
    });
  });

  it("honours Retry-After up to the bound, and only to lengthen the wait", () => {
    expect(nextAfterAttempt({ kind: "http", status: 429, retryAfterMs: 120000 }, 1, policy, opts)).toEqual({
      state: "PENDING",
      delayMs: 120000,
    });
    expect(nextAfterAttempt({ kind: "http", status: 429, retryAfterMs: 1000 }, 1, policy, opts)).toEqual({
      state: "PENDING",
      delayMs: 60000,
    });
    expect(nextAfterAttempt({ kind: "http", status: 503, retryAfterMs: 86400000 }, 1, policy, opts)).toEqual({
      state: "PENDING",
      delayMs: 3600000,
    });
  });

  it("ends the delivery at once on 410 Gone, and after a manual retry's single attempt", () => {
    expect(nextAfterAttempt({ kind: "http", status: 410 }, 1, policy, opts)).toEqual({ state: "FAILED", gone: true });
    expect(nextAfterAttempt({ kind: "http", status: 500 }, 1, policy, { retries: false, random: 0.5 })).toEqual({
      state: "FAILED",
      gone: false,
    });
  });

  it("uses the documented default schedule", () => {
    expect(loadConfig({}).webhookRetryScheduleMs).toEqual([
      5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000,
    ]);
    expect(loadConfig({}).webhookThrottleMinMs).toBe(60000);
    expect(loadConfig({}).webhookTimeoutMs).toBe(15000);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it("reads delay-seconds and HTTP dates", () => {
    expect(parseRetryAfter("120", now)).toBe(120000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:01:00 GMT", now)).toBe(60000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now)).toBe(0);
  });
  it("ignores what it cannot read", () => {
    for (const bad of [undefined, "", "soon", "-5", "1.5", "12345678901", "2026-01-01"])
      expect(parseRetryAfter(bad, now)).toBeUndefined();
  });
});

describe("DestinationSlots", () => {
  it("reports each busy destination's free share and the global free slots", () => {
    const slots = new DestinationSlots(4, 2);
    slots.take("https://a:443");
    slots.take("https://a:443");
    slots.take("https://b:443");
    expect(slots.free()).toBe(1);
    expect(slots.busy()).toEqual(
      new Map([
        ["https://a:443", 0],
        ["https://b:443", 1],
      ]),
    );
    slots.release("https://a:443");
    slots.release("https://b:443");
    expect(slots.busy()).toEqual(new Map([["https://a:443", 1]]));
    expect(slots.inFlight).toBe(1);
  });
});

describe("config", () => {
  it("refuses a notifier lease shorter than the webhook timeout plus a second, and malformed CIDRs", () => {
    expect(() => loadConfig({ AGENTD_NOTIFIER_LEASE_MS: "10000", AGENTD_WEBHOOK_TIMEOUT_MS: "15000" })).toThrow(
      /AGENTD_NOTIFIER_LEASE_MS/,
    );
    expect(() => loadConfig({ AGENTD_WEBHOOK_ALLOW_CIDRS: "10.0.0.0/8,nonsense" })).toThrow(
      /AGENTD_WEBHOOK_ALLOW_CIDRS="nonsense"/,
    );
    expect(loadConfig({ AGENTD_WEBHOOK_ALLOW_CIDRS: "10.0.0.0/8, fd00::/8" }).webhookAllowCidrs).toEqual([
      "10.0.0.0/8",
      "fd00::/8",
    ]);
  });
});
