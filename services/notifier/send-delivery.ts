// One HTTP attempt: POST the body with its headers and report what happened.
// The SSRF guard runs on the address actually connected to: a custom `lookup`
// resolves the host and hands the socket only addresses the guard allows (an
// IP-literal host is checked before connecting, since Node skips lookup for
// it). Redirects are never followed; the whole attempt — connect, answer and
// the first 1 KiB of the body — has one deadline. Never throws.
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import http from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import type { AddressGuard } from "../shared/webhooks/address-guard.js";
import { hostOf } from "../shared/webhooks/url-policy.js";
import { type AttemptKind, parseRetryAfter } from "./retry-schedule.js";

export interface SendResult {
  kind: AttemptKind;
  /** HTTP status, 0 when there was no answer. */
  status: number;
  latencyMs: number;
  /** Why the attempt failed; empty on success. */
  error: string;
  /** The first 1 KiB of the answer, as text. */
  responseBody: string;
  retryAfterMs?: number;
}

export interface SendOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  allowHttp: boolean;
  guard: AddressGuard;
  agents?: { http: http.Agent; https: https.Agent };
}

const RESPONSE_BODY_LIMIT = 1024;
/** Bodies up to this size are read to the end so the connection can be reused. */
const DRAIN_LIMIT = 64 * 1024;

class RefusedError extends Error {
  override name = "RefusedError";
}

class TimeoutError extends Error {
  override name = "TimeoutError";
}

/** A `lookup` that passes on only the addresses the guard allows. */
function guardedLookup(guard: AddressGuard): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, found: LookupAddress[]) => {
      if (err) return callback(err, "", 0);
      const allowed = found.filter((a) => guard.check(a.address).allowed);
      if (allowed.length === 0) {
        const first = found[0];
        const why = first ? guard.check(first.address) : undefined;
        const detail = first && why && !why.allowed ? `${first.address}, ${why.why}` : "no address";
        return callback(new RefusedError(`destination refused: ${hostname} resolves to ${detail}`), "", 0);
      }
      if (options.all) return (callback as (e: null, a: LookupAddress[]) => void)(null, allowed);
      const one = allowed[0]!;
      callback(null, one.address, one.family);
    });
  };
}

/** Keep-alive agents for a notifier: sockets are reused per destination. */
export function createAgents(maxSocketsPerHost: number) {
  const options = {
    keepAlive: true,
    maxSockets: maxSocketsPerHost,
    maxFreeSockets: maxSocketsPerHost,
    scheduling: "lifo" as const,
  };
  return { http: new http.Agent(options), https: new https.Agent(options) };
}

function safeText(buffer: Buffer): string {
  // Postgres text cannot hold NUL.
  return buffer.toString("utf8").replaceAll("\u0000", "");
}

export function sendDelivery(opts: SendOptions): Promise<SendResult> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  const refused = (error: string): Promise<SendResult> =>
    Promise.resolve({ kind: "refused", status: 0, latencyMs: 0, error, responseBody: "" });

  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    return refused("invalid URL");
  }
  if (url.protocol === "http:" && !opts.allowHttp)
    return refused("destination refused: plain http is not allowed (AGENTD_WEBHOOK_ALLOW_HTTP)");
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return refused(`destination refused: scheme ${url.protocol}`);
  const host = hostOf(url);
  if (isIP(host) !== 0) {
    const verdict = opts.guard.check(host);
    if (!verdict.allowed) return refused(`destination refused: ${host} is ${verdict.why}`);
  }

  return new Promise<SendResult>((resolve) => {
    let settled = false;
    const finish = (result: Omit<SendResult, "latencyMs">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...result, latencyMs: latency() });
    };
    const client = url.protocol === "https:" ? https : http;
    const agent = opts.agents ? (url.protocol === "https:" ? opts.agents.https : opts.agents.http) : undefined;
    const req = client.request(url, {
      method: "POST",
      headers: { ...opts.headers, "content-length": String(Buffer.byteLength(opts.body)) },
      lookup: guardedLookup(opts.guard),
      ...(agent ? { agent } : {}),
    });
    let status = 0;
    let answer: Omit<SendResult, "latencyMs"> | undefined;
    const timer = setTimeout(
      () => req.destroy(new TimeoutError(`no complete answer within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );

    req.on("response", (res) => {
      status = res.statusCode ?? 0;
      const success = status >= 200 && status < 300;
      let error = "";
      if (!success) {
        error =
          status >= 300 && status < 400
            ? `answered ${status} (redirect to ${res.headers.location ?? "nowhere"} not followed)`
            : `answered ${status}${res.statusMessage ? ` ${res.statusMessage}` : ""}`;
      }
      const retryAfterMs = parseRetryAfter(res.headers["retry-after"], Date.now());
      const chunks: Buffer[] = [];
      let kept = 0;
      let seen = 0;
      const result = (): Omit<SendResult, "latencyMs"> => ({
        kind: success ? "success" : "http",
        status,
        error,
        responseBody: safeText(Buffer.concat(chunks).subarray(0, RESPONSE_BODY_LIMIT)),
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      });
      res.on("data", (chunk: Buffer) => {
        seen += chunk.length;
        if (kept < RESPONSE_BODY_LIMIT) {
          chunks.push(chunk);
          kept += chunk.length;
        }
        answer = result();
        // A large answer is not worth reading: keep what we have and drop the connection.
        if (seen > DRAIN_LIMIT) {
          finish(answer);
          res.destroy();
        }
      });
      res.on("end", () => finish(result()));
      res.on("error", () => finish(result()));
      res.on("close", () => finish(result()));
      answer = result();
    });

    req.on("error", (err) => {
      // The status line decides: a 2xx whose body is cut short by the deadline still succeeded.
      if (answer) return finish(answer);
      if (err instanceof TimeoutError)
        return finish({ kind: "timeout", status: 0, error: `timeout: ${err.message}`, responseBody: "" });
      if (err instanceof RefusedError)
        return finish({ kind: "refused", status: 0, error: err.message, responseBody: "" });
      const code = (err as NodeJS.ErrnoException).code;
      finish({
        kind: "network",
        status: 0,
        error: code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message,
        responseBody: "",
      });
    });
    req.end(opts.body);
  });
}
