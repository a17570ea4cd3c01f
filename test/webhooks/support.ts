// Shared pieces of the webhook tests: a real receiver on 127.0.0.1, an agent
// service with the outbox, and an in-process notifier on the same database.
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { AgentDefinition } from "../../services/agent/agents/agent.js";
import { createNotifier, type Notifier } from "../../services/notifier/notifier.js";
import { type Config, loadConfig } from "../../services/shared/config.js";
import { createLogger, silentLogger } from "../../services/shared/log.js";
import {
  type AgentdProcess,
  spawnAgentdCommand,
  startAgentd,
  TEST_CONFIG,
  type TestAgentd,
} from "../support/agentd.js";

/** Millisecond schedules, and loopback allowed for the local receivers. */
export const WEBHOOK_TEST_CONFIG: Partial<Config> = {
  webhookAllowHttp: true,
  webhookAllowCidrs: ["127.0.0.0/8"],
  webhookTimeoutMs: 1000,
  notifierLeaseMs: 3000,
  webhookRetryScheduleMs: [50, 100, 150],
  webhookThrottleMinMs: 400,
  webhookRetryAfterMaxMs: 5000,
  webhookConcurrency: 16,
  webhookEndpointConcurrency: 4,
};

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  /** Date.now() when the request's body had arrived. */
  at: number;
  /** The n-th request (0-based) this receiver got. */
  index: number;
}

export type Reply = { status: number; headers?: Record<string, string>; body?: string; delayMs?: number };

export interface Receiver {
  url: string;
  received: Received[];
  /** Resolves when `ok(received)` holds, checking on each request. */
  until(ok: (received: Received[]) => boolean, ms?: number): Promise<Received[]>;
  close(): Promise<void>;
}

/** A webhook receiver on 127.0.0.1 that answers with `reply(request)` (default 200). */
export async function startReceiver(reply: (r: Received) => Reply = () => ({ status: 200 })): Promise<Receiver> {
  const received: Received[] = [];
  const waiters = new Set<() => void>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r: Received = {
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        at: Date.now(),
        index: received.length,
      };
      received.push(r);
      for (const w of waiters) w();
      const answer = reply(r);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(answer.status, answer.headers ?? {}).end(answer.body ?? "");
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    until(ok, ms = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!ok(received)) return;
          cleanup();
          resolve(received);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`receiver condition not met within ${ms} ms; got ${received.length} requests`));
        }, ms);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface WebhookHarness {
  agentd: TestAgentd;
  notifier: Notifier;
  config: Config;
  /** Starts another in-process notifier (stopped by close()). */
  startNotifier(overrides?: Partial<Config>): Notifier;
  close(): Promise<void>;
}

/** An agent service with the webhook outbox, and a notifier (unless `notifier: false`). */
export async function startWebhookHarness(
  opts: {
    config?: Partial<Config>;
    notifierConfig?: Partial<Config>;
    agents?: AgentDefinition[];
    notifier?: boolean;
  } = {},
): Promise<WebhookHarness> {
  const base = { ...WEBHOOK_TEST_CONFIG, ...opts.config };
  const agentd = await startAgentd({
    config: base,
    ...(opts.agents ? { agents: opts.agents } : {}),
  });
  const notifiers: Notifier[] = [];
  const config = loadConfig({}, {}, { ...TEST_CONFIG, ...base, ...opts.notifierConfig });
  const startNotifier = (overrides: Partial<Config> = {}) => {
    const n = createNotifier({
      db: agentd.db,
      bus: agentd.bus,
      config: { ...config, ...overrides },
      // AGENTD_TEST_LOG=debug shows the notifiers' logs.
      logger: process.env.AGENTD_TEST_LOG ? createLogger({ level: process.env.AGENTD_TEST_LOG }) : silentLogger(),
    });
    n.start();
    notifiers.push(n);
    return n;
  };
  const notifier = opts.notifier === false ? (undefined as unknown as Notifier) : startNotifier();
  return {
    agentd,
    notifier,
    config,
    startNotifier,
    async close() {
      await Promise.all(notifiers.map((n) => n.stop(500)));
      await agentd.close();
    },
  };
}

/** A notifier child process (`agentd notifier`) on a shared database. */
export type NotifierProcess = AgentdProcess;

export const NOTIFIER_TEST_ENV: Record<string, string> = {
  AGENTD_WEBHOOK_ALLOW_HTTP: "true",
  AGENTD_WEBHOOK_ALLOW_CIDRS: "127.0.0.0/8",
  AGENTD_WEBHOOK_TIMEOUT_MS: "1000",
  AGENTD_NOTIFIER_LEASE_MS: "2500",
  AGENTD_WEBHOOK_RETRY_SCHEDULE_MS: "100,100,100",
  AGENTD_WEBHOOK_THROTTLE_MIN_MS: "200",
  AGENTD_POLL_MS: "200",
  AGENTD_LEASE_MS: "1500",
  AGENTD_HEARTBEAT_MS: "100",
  AGENTD_LOG_LEVEL: "info",
};

export function spawnNotifier(opts: { databaseUrl: string; env?: Record<string, string> }): Promise<NotifierProcess> {
  return spawnAgentdCommand("notifier", {
    databaseUrl: opts.databaseUrl,
    ready: "agentd notifier is running",
    env: { ...NOTIFIER_TEST_ENV, ...opts.env },
  });
}
