// TLS on the one port (--tls-cert/--tls-key): every protocol over HTTPS with ALPN h2 and
// http/1.1, a certificate reload that keeps open connections, and bad files refused by name.
// Certificates are made here with openssl.
import { execFile } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { promisify } from "node:util";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/agentd/v1/agent_service_pb.js";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { TaskService } from "../../gen/agentd/v1/task_service_pb.js";
import { loadTlsFiles } from "../../services/agent/server/tls.js";
import {
  type AgentdProcess,
  repoRoot,
  spawnAgentd,
  spawnAgentdCommand,
  startAgentd,
  type TestAgentd,
} from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { value } from "../support/json.js";

const run = promisify(execFile);

interface Pair {
  cert: string;
  key: string;
  pem: Buffer;
}

let dir: string;
/** Two certificates for localhost/127.0.0.1, and a third key that matches neither. */
let first: Pair;
let second: Pair;
let strayKey: string;

async function makeCertificate(name: string): Promise<Pair> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=agentd test ${name}`,
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  return { cert, key, pem: await readFile(cert) };
}

/** The SHA-256 fingerprint of the certificate a new TLS connection is served. */
function servedFingerprint(port: number, ca: Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", servername: "localhost", port, ca, ALPNProtocols: ["h2"] }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.once("error", reject);
  });
}

const fingerprintOf = async (file: string) =>
  new (await import("node:crypto")).X509Certificate(await readFile(file)).fingerprint256;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agentd-tls-"));
  [first, second] = await Promise.all([makeCertificate("first"), makeCertificate("second")]);
  strayKey = (await makeCertificate("stray")).key;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("TLS on the one port", () => {
  let agentd: TestAgentd;
  let certFile: string;
  let keyFile: string;

  beforeAll(async () => {
    // The server reads these paths; the reload test overwrites them.
    certFile = join(dir, "served.crt");
    keyFile = join(dir, "served.key");
    await copyFile(first.cert, certFile);
    await copyFile(first.key, keyFile);
    agentd = await startAgentd({ config: { tlsCert: certFile, tlsKey: keyFile } });
  });
  afterAll(async () => {
    await agentd?.close();
  });

  it("serves https and refuses cleartext", async () => {
    expect(agentd.url).toBe(`https://127.0.0.1:${agentd.port}`);
    await expect(fetch(`http://127.0.0.1:${agentd.port}/healthz`)).rejects.toThrow();
  });

  /** agentd_http2_connections_total for one server, read over HTTPS/2 with the test CA. */
  async function connectionsBy(server: string): Promise<number> {
    const session = http2.connect(agentd.url, { ca: first.pem });
    try {
      const text = await new Promise<string>((resolve, reject) => {
        const stream = session.request({ ":path": "/metrics" });
        let body = "";
        stream.setEncoding("utf8");
        stream.on("data", (chunk: string) => {
          body += chunk;
        });
        stream.on("end", () => resolve(body));
        stream.on("error", reject);
      });
      const line = text.split("\n").find((l) => l.startsWith(`agentd_http2_connections_total{server="${server}"}`));
      return line ? Number(line.split(" ").at(-1)) : 0;
    } finally {
      session.close();
    }
  }

  it("answers gRPC from grpc-js with TLS credentials", async () => {
    // gRPC over TLS reaches grpc-js, the default gRPC server (unless the run sets connect).
    const viaGrpcJs = (process.env.AGENTD_TEST_GRPC_SERVER ?? "grpc-js") === "grpc-js";
    const before = await connectionsBy("grpc-js");
    const definition = protoLoader.loadSync("agentd/v1/agent_service.proto", {
      includeDirs: [join(repoRoot, "proto")],
      longs: String,
      enums: String,
      oneofs: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      agentd: { v1: { AgentService: grpc.ServiceClientConstructor } };
    };
    const client = new loaded.agentd.v1.AgentService(`127.0.0.1:${agentd.port}`, grpc.credentials.createSsl(first.pem));
    try {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${agentd.key}`);
      const response = await new Promise<{ task: { state: string } }>((resolve, reject) =>
        (
          client as unknown as {
            Run: (
              req: object,
              md: grpc.Metadata,
              cb: (err: Error | null, res: { task: { state: string } }) => void,
            ) => void;
          }
        ).Run(
          { agent: "simulate", input: { structValue: { fields: { steps: { numberValue: 1 } } } } },
          md,
          (err, res) => (err ? reject(err) : resolve(res)),
        ),
      );
      expect(response.task.state).toBe("TASK_STATE_SUCCEEDED");
    } finally {
      client.close();
    }
    expect(await connectionsBy("grpc-js")).toBe(viaGrpcJs ? before + 1 : before);
  });

  const interceptors: Interceptor[] = [
    (next) => (req) => {
      req.header.set("authorization", `Bearer ${agentd.key}`);
      return next(req);
    },
  ];
  const nodeOptions = () => ({ ca: first.pem });

  for (const httpVersion of ["1.1", "2"] as const) {
    it(`answers Connect and gRPC-Web over HTTP/${httpVersion}`, async () => {
      const nodeOptions = { ca: first.pem };
      const connect = createClient(
        AgentService,
        createConnectTransport({ baseUrl: agentd.url, httpVersion, nodeOptions, interceptors }),
      );
      const { task } = await connect.run({ agent: "simulate", input: value({ steps: 1 }) });
      expect(task?.state).toBe(TaskState.SUCCEEDED);
      const web = createClient(
        TaskService,
        createGrpcWebTransport({ baseUrl: agentd.url, httpVersion, nodeOptions, interceptors }),
      );
      const got = await web.getTask({ taskId: task!.id });
      expect(got.task?.id).toBe(task!.id);
    });
  }

  for (const curlVersion of ["--http1.1", "--http2"] as const) {
    it(`streams SSE to curl ${curlVersion} --cacert`, async () => {
      const agents = createClient(
        AgentService,
        createConnectTransport({ baseUrl: agentd.url, httpVersion: "2", nodeOptions: nodeOptions(), interceptors }),
      );
      const { task } = await agents.run({ agent: "simulate", input: value({ steps: 2 }) });
      const { stdout } = await run("curl", [
        "-sS",
        "-N",
        curlVersion,
        "--cacert",
        first.cert,
        "--max-time",
        "30",
        "-H",
        `authorization: Bearer ${agentd.key}`,
        `${agentd.url}/v1/tasks/${task!.id}/events`,
      ]);
      expect(stdout).toContain("id: 1\n");
      expect(stdout).toContain("event: state_change");
      expect(stdout).toContain("TASK_STATE_SUCCEEDED");
    });
  }

  it("reloads the certificate for new connections and keeps the open ones", async () => {
    const ca = [first.pem, second.pem];
    expect(await servedFingerprint(agentd.port, ca)).toBe(await fingerprintOf(first.cert));
    // An HTTP/2 connection opened before the reload…
    const session = http2.connect(agentd.url, { ca, servername: "localhost" });
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ":path": path });
        stream.on("response", (headers) => resolve(Number(headers[":status"])));
        stream.on("error", reject);
        stream.resume();
      });
    try {
      expect(await get("/healthz")).toBe(200);
      await copyFile(second.cert, certFile);
      await copyFile(second.key, keyFile);
      await agentd.service.reloadTls();
      // …goes on serving; a new one gets the new certificate.
      expect(await get("/healthz")).toBe(200);
      expect(session.closed || session.destroyed).toBe(false);
      expect(await servedFingerprint(agentd.port, ca)).toBe(await fingerprintOf(second.cert));

      // A key that does not match is refused by name, and the served certificate stays.
      await copyFile(strayKey, keyFile);
      await expect(agentd.service.reloadTls()).rejects.toThrow(
        `TLS key ${keyFile} does not belong to the certificate ${certFile}`,
      );
      expect(await servedFingerprint(agentd.port, ca)).toBe(await fingerprintOf(second.cert));
      expect(await get("/healthz")).toBe(200);
    } finally {
      session.close();
    }
  });
});

describe("TLS files are checked before anything listens", () => {
  it("names a missing, non-PEM or mismatched file", async () => {
    const missing = join(dir, "missing.crt");
    await expect(loadTlsFiles({ certFile: missing, keyFile: first.key })).rejects.toThrow(
      `cannot read TLS certificate --tls-cert / AGENTD_TLS_CERT ${missing}: ENOENT`,
    );
    const garbage = join(dir, "garbage.key");
    await writeFile(garbage, "not a key\n");
    await expect(loadTlsFiles({ certFile: first.cert, keyFile: garbage })).rejects.toThrow(
      `TLS key ${garbage} is not a PEM private key`,
    );
    await expect(loadTlsFiles({ certFile: first.key, keyFile: first.key })).rejects.toThrow(
      `TLS certificate ${first.key} is not a PEM certificate`,
    );
    await expect(loadTlsFiles({ certFile: first.cert, keyFile: second.key })).rejects.toThrow(
      `TLS key ${second.key} does not belong to the certificate ${first.cert}`,
    );
  });
});

describe("agentd serve with TLS (child process)", () => {
  let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
  let child: AgentdProcess | undefined;
  beforeAll(async () => {
    shared = await startSharedTestDatabase();
  });
  afterAll(async () => {
    await child?.kill("SIGKILL");
    await shared?.close();
  });

  it("refuses to start with a mismatched key, naming the file (exit 2)", async () => {
    const failed = await spawnAgentdCommand("serve", {
      databaseUrl: shared.url,
      ready: "agentd is serving",
      args: ["--port", "0", "--tls-cert", first.cert, "--tls-key", second.key],
    }).then(
      () => undefined,
      (error: Error) => error.message,
    );
    expect(failed).toContain("exited (2)");
    expect(failed).toContain(`TLS key ${second.key} does not belong to the certificate ${first.cert}`);
  });

  it("reloads on SIGHUP without dropping an open connection; a bad file keeps the old certificate", async () => {
    const certFile = join(dir, "child.crt");
    const keyFile = join(dir, "child.key");
    await copyFile(first.cert, certFile);
    await copyFile(first.key, keyFile);
    child = await spawnAgentd({ databaseUrl: shared.url, env: { AGENTD_TLS_CERT: certFile, AGENTD_TLS_KEY: keyFile } });
    expect(child.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const port = Number(new URL(child.url).port);
    const ca = [first.pem, second.pem];
    const session = http2.connect(child.url, { ca, servername: "localhost" });
    const status = () =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ":path": "/healthz" });
        stream.on("response", (headers) => resolve(Number(headers[":status"])));
        stream.on("error", reject);
        stream.resume();
      });
    const logged = (msg: string, after: number) =>
      expect
        .poll(() => child!.logs.slice(after).some((l) => l.msg === msg), { timeout: 15_000, interval: 100 })
        .toBe(true);
    try {
      expect(await status()).toBe(200);

      await copyFile(second.cert, certFile);
      await copyFile(second.key, keyFile);
      let seen = child.logs.length;
      child.child.kill("SIGHUP");
      await logged("TLS certificate reloaded", seen);
      expect(await servedFingerprint(port, ca)).toBe(await fingerprintOf(second.cert));
      expect(await status()).toBe(200); // the connection from before the reload

      await writeFile(certFile, "truncated\n");
      seen = child.logs.length;
      child.child.kill("SIGHUP");
      await logged("TLS reload failed, still using the previous certificate", seen);
      const failure = child.logs
        .slice(seen)
        .find((l) => l.msg === "TLS reload failed, still using the previous certificate");
      expect(String(failure?.err)).toContain(certFile);
      expect(await servedFingerprint(port, ca)).toBe(await fingerprintOf(second.cert));
      expect(child.child.exitCode).toBeNull();
    } finally {
      session.close();
    }
    expect(await child.kill("SIGTERM")).toBe(0);
    child = undefined;
  });
});
