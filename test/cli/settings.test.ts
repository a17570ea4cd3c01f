// Every setting's bad value stops start-up with a message naming the setting (flag and
// environment variable) and the value; the agentd command exits 2 (a usage error) on it.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, ConfigError, loadConfig, SETTINGS, type Setting } from "../../services/shared/config.js";
import { repoRoot } from "../support/agentd.js";

const run = promisify(execFile);

/** A value each setting refuses, and what the message must say about it. */
const BAD: Partial<Record<keyof Config, { value: string; says: string }[]>> = {
  port: [
    { value: "abc", says: "must be a whole number" },
    { value: "70000", says: "must be at most 65535" },
  ],
  dbMaxConnections: [{ value: "0", says: "must be at least 1" }],
  groupCommitRows: [{ value: "0", says: "must be at least 1" }],
  dbStatementTimeoutMs: [{ value: "soon", says: "must be a whole number" }],
  runnerConcurrency: [{ value: "1.5", says: "must be a whole number" }],
  maxConcurrentRuns: [{ value: "lots", says: "must be a whole number" }],
  leaseMs: [{ value: "-5", says: "must be at least 200" }],
  heartbeatMs: [{ value: "10", says: "must be at least 50" }],
  pollMs: [{ value: "5000", says: "must be at most 2000" }],
  retryBackoffMs: [{ value: "1e3", says: "must be a whole number" }],
  maxRequestBytes: [{ value: "10", says: "must be at least 1024" }],
  maxInputDepth: [{ value: "0", says: "must be at least 1" }],
  shutdownGraceMs: [{ value: "forever", says: "must be a whole number" }],
  logLevel: [{ value: "loud", says: "must be one of trace, debug, info, warn, error, silent" }],
  databaseUrl: [{ value: "mysql://db/x", says: "postgres" }],
  webhookAllowHttp: [{ value: "maybe", says: "must be true or false" }],
  webhookAllowCidrs: [{ value: "10.0.0.0/99", says: "must be CIDRs like 10.0.0.0/8" }],
  webhookTimeoutMs: [{ value: "50", says: "must be at least 100" }],
  webhookRetryScheduleMs: [{ value: "5000,soon", says: "must be a whole number" }],
  webhookThrottleMinMs: [{ value: "-1", says: "must be at least 0" }],
  webhookConcurrency: [{ value: "0", says: "must be at least 1" }],
  webhookEndpointConcurrency: [{ value: "2000", says: "must be at most 1000" }],
  notifierLeaseMs: [{ value: "100", says: "must be at least 200" }],
  webhookRetryAfterMaxMs: [{ value: "x", says: "must be a whole number" }],
  webhookDisableAfterMs: [{ value: "5", says: "must be at least 1000" }],
  notifierMetricsPort: [{ value: "65536", says: "must be at most 65535" }],
  streamKeepAliveMs: [{ value: "20000", says: "must be at most 19000" }],
  maxStreamsPerConnection: [{ value: "0", says: "must be at least 1" }],
  maxStreamsPerTenant: [{ value: "many", says: "must be a whole number" }],
  streamWindowEvents: [{ value: "0", says: "must be at least 1" }],
  metricsPort: [{ value: "-1", says: "must be at least 0" }],
  shutdownDelayMs: [{ value: "700000", says: "must be at most 600000" }],
  webhookMaxPayloadBytes: [{ value: "100", says: "must be at least 4096" }],
  accessLogLevel: [{ value: "chatty", says: "must be one of trace, debug, info, warn, error, silent" }],
  grpcServer: [{ value: "grpc", says: "must be one of connect, grpc-js" }],
  idleTimeoutMs: [{ value: "1", says: "must be at least 100" }],
  headersTimeoutMs: [{ value: "ten", says: "must be a whole number" }],
  requestTimeoutMs: [{ value: "99", says: "must be at least 100" }],
  llmBaseUrl: [{ value: "localhost:11434", says: "must be an http:// or https:// URL" }],
  llmMaxToolRounds: [{ value: "0", says: "must be at least 1" }],
  corsOrigins: [
    { value: "app.example.com", says: "must be origins like https://app.example.com" },
    { value: "https://app.example.com/path", says: "no path" },
  ],
};

/**
 * Settings that take any text, and where a bad one is reported instead. The test below fails
 * when a setting is added without a bad-value case here or in BAD.
 */
const ANY_TEXT: Partial<Record<keyof Config, string>> = {
  host: "the listen call names the address it cannot bind",
  dataDir: "any folder; the database names it when it cannot open it",
  tlsCert: "the file is read at start: a ConfigError naming it (test/protocols/tls.test.ts)",
  tlsKey: "as tlsCert",
  llmApiKey: "any secret",
  llmModel: "any model name",
  clientUrl: "checked by the client commands: the 'agentd tasks list --url' case below",
  clientApiKey: "any key; the server answers UNAUTHENTICATED",
  agentModules: "loaded at start: the '--agents' cases below",
};

function nameOf(setting: Setting): string {
  return setting.flag ? `${setting.flag} / ${setting.env}` : setting.env;
}

describe("settings: a bad value names the setting and the value", () => {
  it("every setting has a bad-value case (or is listed as taking any text)", () => {
    for (const setting of SETTINGS as readonly Setting[]) {
      expect(BAD[setting.key] ?? ANY_TEXT[setting.key], `no case for ${setting.key}`).toBeDefined();
    }
  });

  for (const setting of SETTINGS as readonly Setting[]) {
    for (const { value, says } of BAD[setting.key] ?? []) {
      it(`${setting.env}=${value}`, () => {
        const fromEnv = () => loadConfig({ [setting.env]: value });
        expect(fromEnv).toThrow(ConfigError);
        expect(fromEnv).toThrow(`invalid setting ${nameOf(setting)}=`);
        // A URL may carry a password, so a database URL is never echoed.
        expect(fromEnv).toThrow(setting.kind === "url" ? "not shown" : value.split(",").at(-1)!);
        expect(fromEnv).toThrow(says);
        // A flag, where the setting has one, gets the same message.
        if (setting.flag) expect(() => loadConfig({}, { [setting.key]: value })).toThrow(says);
      });
    }
  }

  it("settings that must agree with each other name both", () => {
    expect(() => loadConfig({ AGENTD_HEARTBEAT_MS: "6000", AGENTD_LEASE_MS: "15000" })).toThrow(
      /AGENTD_HEARTBEAT_MS=6000: must be at most a third of AGENTD_LEASE_MS/,
    );
    expect(() => loadConfig({ AGENTD_NOTIFIER_LEASE_MS: "1000" })).toThrow(
      /AGENTD_NOTIFIER_LEASE_MS=1000: must be at least AGENTD_WEBHOOK_TIMEOUT_MS/,
    );
    expect(() => loadConfig({ AGENTD_TLS_CERT: "cert.pem" })).toThrow(/--tls-cert .* --tls-key .* go together/);
    expect(() => loadConfig({ AGENTD_METRICS_PORT: "8080" })).toThrow(/AGENTD_METRICS_PORT=8080: must differ/);
    expect(() => loadConfig({ AGENTD_HEADERS_TIMEOUT_MS: "70000" })).toThrow(
      /--headers-timeout-ms \/ AGENTD_HEADERS_TIMEOUT_MS=70000: must be at most --request-timeout-ms/,
    );
  });

  it("good CORS origins pass", () => {
    const origins = "https://app.example.com,http://localhost:*,http://127.0.0.1:5173,https://x.example/,*";
    expect(loadConfig({ AGENTD_CORS_ORIGINS: origins }).corsOrigins).toHaveLength(5);
  });
});

describe("the agentd command on a bad setting", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentd-settings-"));
    await writeFile(join(dir, "not-an-agent.mjs"), "export default { hello: 1 };\n");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const agentd = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [`${repoRoot}bin/agentd.js`, ...args], {
      cwd: dir,
      env: { ...process.env, AGENTD_DATA_DIR: join(dir, "data"), ...env },
    });

  it.each([
    [["serve", "--log-level", "loud"], {}, '--log-level / AGENTD_LOG_LEVEL="loud": must be one of trace, debug'],
    [["serve"], { AGENTD_CORS_ORIGINS: "app.example.com" }, 'AGENTD_CORS_ORIGINS="app.example.com": must be origins'],
    [
      ["serve", "--port", "0", "--agents", "no-such-agent-package"],
      {},
      '--agents / AGENTD_AGENTS="no-such-agent-package"',
    ],
    [
      ["serve", "--port", "0", "--agents", "./missing.mjs"],
      {},
      '--agents / AGENTD_AGENTS="./missing.mjs": agent module',
    ],
    [["serve", "--port", "0"], { AGENTD_AGENTS: "./not-an-agent.mjs" }, 'AGENTD_AGENTS="./not-an-agent.mjs"'],
    [["tasks", "list", "--url", "localhost:8080", "--key", "k"], {}, '--url / AGENTD_URL="localhost:8080"'],
  ] as [string[], Record<string, string>, string][])(
    "agentd %j %j exits 2",
    { timeout: 60_000 },
    async (args, env, says) => {
      const failed = await agentd(args, env).then(
        () => undefined,
        (error: { code: number; stderr: string }) => error,
      );
      expect(failed?.code).toBe(2);
      expect(failed?.stderr).toContain(says);
    },
  );

  it("a port in use or an address not on this machine names --port / --host (exit 2)", {
    timeout: 60_000,
  }, async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const port = (busy.address() as AddressInfo).port;
    try {
      const inUse = await agentd(["serve", "--port", String(port)]).then(
        () => undefined,
        (error: { code: number; stderr: string }) => error,
      );
      expect(inUse?.code).toBe(2);
      expect(inUse?.stderr).toContain(`invalid setting --port / AGENTD_PORT=${port}: the port is in use`);
    } finally {
      busy.close();
    }
    const away = await agentd(["serve", "--port", "0", "--host", "192.0.2.1"]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(away?.code).toBe(2);
    expect(away?.stderr).toContain('invalid setting --host / AGENTD_HOST="192.0.2.1"');
  });
});
