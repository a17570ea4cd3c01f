// Whether a webhook URL may be registered: an absolute https URL (http only
// where the config allows it), no credentials, and a host whose every address
// passes the SSRF guard. The same guard runs again at every send, on the
// address actually connected to (see notifier/send-delivery.ts), because DNS
// answers change.
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { AddressGuard } from "./address-guard.js";

export interface UrlPolicy {
  allowHttp: boolean;
  guard: AddressGuard;
}

export interface UrlProblem {
  description: string;
  reason: "INVALID_URL" | "INSECURE_URL" | "FORBIDDEN_DESTINATION";
}

const MAX_URL_LENGTH = 2048;
const DNS_TIMEOUT_MS = 5000;

/** The host of a URL as an address or name to resolve: brackets of IPv6 literals removed. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, "$1");
}

function tooLong(text: string): UrlProblem | null {
  return text.length > MAX_URL_LENGTH
    ? { description: `must be at most ${MAX_URL_LENGTH} characters`, reason: "INVALID_URL" }
    : null;
}

/** Scheme, credentials, fragment: what can be judged of a parsed URL without DNS. */
function shapeProblem(url: URL, allowHttp: boolean): UrlProblem | null {
  if (url.protocol === "http:" && !allowHttp) {
    return { description: "must use https (this server does not allow plain http webhooks)", reason: "INSECURE_URL" };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    return { description: "must be an https URL", reason: "INVALID_URL" };
  if (url.username !== "" || url.password !== "") {
    return {
      description: "must not contain a user name or password; receivers authenticate deliveries by their signature",
      reason: "INVALID_URL",
    };
  }
  if (url.hash !== "") return { description: "must not contain a #fragment", reason: "INVALID_URL" };
  return null;
}

/** Parses a URL to register, once: its first problem that needs no DNS, or the URL to check with `checkDestination`. */
export function parseWebhookUrl(text: string, allowHttp: boolean): { url: URL } | UrlProblem {
  const long = tooLong(text);
  if (long) return long;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { description: "must be an absolute https URL", reason: "INVALID_URL" };
  }
  return shapeProblem(url, allowHttp) ?? { url };
}

function forbidden(host: string, address: string, why: string): UrlProblem {
  const shown = host === address ? address : `${host} (${address})`;
  return {
    description: `points to a forbidden destination: ${shown} is ${why}; allow the range with AGENTD_WEBHOOK_ALLOW_CIDRS if intended`,
    reason: "FORBIDDEN_DESTINATION",
  };
}

/** For a URL the caller has parsed already (`text` as sent, `url` its parse): the checks of
 * `parseWebhookUrl`, then `checkDestination`, without parsing again. Null when it may be registered. */
export async function checkWebhookUrl(text: string, url: URL, policy: UrlPolicy): Promise<UrlProblem | null> {
  return tooLong(text) ?? shapeProblem(url, policy.allowHttp) ?? checkDestination(url, policy.guard);
}

/** Whether a parsed URL's host, and every address it resolves to, passes the SSRF guard: the first problem, or null. */
export async function checkDestination(url: URL, guard: AddressGuard): Promise<UrlProblem | null> {
  const host = hostOf(url);
  let addresses: string[];
  if (isIP(host) !== 0) {
    addresses = [host];
  } else {
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("DNS lookup timed out")), DNS_TIMEOUT_MS);
      });
      const found = await Promise.race([dnsLookup(host, { all: true, verbatim: true }), timeout]);
      addresses = found.map((a) => a.address);
    } catch (error) {
      const code = (error as { code?: string }).code ?? (error as Error).message;
      return { description: `host ${host} does not resolve (${code})`, reason: "INVALID_URL" };
    } finally {
      clearTimeout(timer);
    }
  }
  // Every address must pass: the notifier may connect to any of them.
  for (const address of addresses) {
    const verdict = guard.check(address);
    if (!verdict.allowed) return forbidden(host, address, verdict.why);
  }
  return null;
}
