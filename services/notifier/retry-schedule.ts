// What happens after an attempt: pure, so the rules read in one place and are
// tested without a clock or a network. The schedule gives the delay before
// each retry (±20 % jitter so failures do not retry in lockstep); throttling
// answers and timeouts wait at least a minimum; `Retry-After` lengthens the
// wait up to a bound; 410 Gone and the last attempt end the delivery.

/** How an attempt ended, as far as retrying is concerned. */
export type AttemptKind =
  | "success" // 2xx
  | "http" // any other answer
  | "timeout" // no full answer within the timeout
  | "network" // connection refused, reset, DNS failure
  | "refused" // destination refused by the SSRF guard or the http rule
  | "lost"; // the notifier died or lost its lease mid-attempt

export interface AttemptSummary {
  kind: AttemptKind;
  /** HTTP status, 0 when there was no answer. */
  status: number;
  /** Parsed `Retry-After`, if the receiver sent one. */
  retryAfterMs?: number;
}

export interface RetryPolicy {
  /** Delays before retry 1, 2, …; its length is the number of retries. */
  scheduleMs: readonly number[];
  /** Least wait after 429, 502, 503, 504 or a timeout. */
  throttleMinMs: number;
  /** Longest `Retry-After` honoured. */
  retryAfterMaxMs: number;
}

export type Next = { state: "SUCCEEDED" } | { state: "PENDING"; delayMs: number } | { state: "FAILED"; gone: boolean };

const THROTTLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);
const JITTER = 0.2;

/** `base` ± 20 %, from a random number in [0, 1). */
export function jitter(base: number, random: number): number {
  return Math.round(base * (1 - JITTER + 2 * JITTER * random));
}

/**
 * The delivery's next state after its `attempt`-th attempt (1-based, counted
 * within the current run of automatic retries). `retries: false` is a single
 * manual retry: a failure ends it.
 */
export function nextAfterAttempt(
  result: AttemptSummary,
  attempt: number,
  policy: RetryPolicy,
  opts: { retries: boolean; random: number },
): Next {
  if (result.kind === "success") return { state: "SUCCEEDED" };
  if (result.status === 410) return { state: "FAILED", gone: true };
  const base = policy.scheduleMs[attempt - 1];
  if (!opts.retries || base === undefined) return { state: "FAILED", gone: false };
  let delayMs = jitter(base, opts.random);
  if (result.kind === "timeout" || THROTTLE_STATUSES.has(result.status))
    delayMs = Math.max(delayMs, policy.throttleMinMs);
  if (result.retryAfterMs !== undefined)
    delayMs = Math.max(delayMs, Math.min(result.retryAfterMs, policy.retryAfterMaxMs));
  return { state: "PENDING", delayMs };
}

/**
 * `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Returns
 * milliseconds from `now`, or undefined when absent or malformed. A date in the
 * past is 0.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000;
  // HTTP-date: IMF-fixdate and the obsolete forms Date.parse understands; a bare number is not a date.
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
