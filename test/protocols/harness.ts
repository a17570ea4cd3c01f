// Shared by the protocol tests: a real one-port server with health and
// reflection, a grpc-js health client, `buf curl`, and a slow TCP proxy.
import { execFile } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { DescFile } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { file_agentd_v1_agent_service } from "../../gen/agentd/v1/agent_service_pb.js";
import { file_agentd_v1_task_service } from "../../gen/agentd/v1/task_service_pb.js";
import { file_agentd_v1_webhook_service } from "../../gen/agentd/v1/webhook_service_pb.js";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import { createHealthService, type HealthService } from "../../services/agent/server/health.js";
import { listenOnePort, type OnePortServer } from "../../services/agent/server/one-port.js";
import { createReflectionRoutes } from "../../services/agent/server/reflection.js";
import { closeFailingOnLeaks } from "../support/leak-check.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The files the agent service advertises by reflection (their services need not be mounted here). */
export const reflectedFiles: DescFile[] = [
  file_agentd_v1_agent_service,
  file_agentd_v1_task_service,
  file_agentd_v1_webhook_service,
  file_grpc_health_v1_health,
];

export interface SeenRequest {
  httpVersion: string;
  contentType: string;
  path: string;
}

export interface TestServer {
  server: OnePortServer;
  health: HealthService;
  /** Every request the handler received: proves which HTTP version and protocol a client used. */
  seen: SeenRequest[];
  /** Teardown: closes the server, failing if a test left a connection open (see test/support/leak-check.ts). */
  close(): Promise<void>;
}

export async function startTestServer(opts: { maxRequestBytes?: number } = {}): Promise<TestServer> {
  const health = createHealthService();
  const reflection = createReflectionRoutes(reflectedFiles);
  const routes = (router: ConnectRouter) => {
    health.routes(router);
    reflection(router);
  };
  const adapter = connectNodeAdapter({ routes });
  const seen: SeenRequest[] = [];
  const server = await listenOnePort({
    handler: (req, res) => {
      seen.push({ httpVersion: req.httpVersion, contentType: req.headers["content-type"] ?? "", path: req.url ?? "" });
      adapter(req, res);
    },
    host: "127.0.0.1",
    port: 0,
    maxRequestBytes: opts.maxRequestBytes,
  });
  return { server, health, seen, close: () => closeFailingOnLeaks(server) };
}

// ---- grpc-js, loading the .proto at run time as grpc-js users do

export interface GrpcHealthClient extends grpc.Client {
  Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}

export function grpcHealthClient(url: string): GrpcHealthClient {
  const definition = protoLoader.loadSync("grpc/health/v1/health.proto", {
    includeDirs: [path.join(repoRoot, "proto")],
    enums: String,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const target = new URL(url).host;
  return new loaded.grpc.health.v1.Health(target, grpc.credentials.createInsecure()) as unknown as GrpcHealthClient;
}

export function grpcCheck(client: GrpcHealthClient, service: string): Promise<{ status: string }> {
  return new Promise((resolve, reject) => {
    client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res ?? { status: "" })));
  });
}

// ---- buf curl, as a user would run it

const bufBin = path.join(repoRoot, "node_modules/.bin/buf");

export interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function bufCurl(args: string[]): Promise<CurlResult> {
  try {
    const { stdout, stderr } = await promisify(execFile)(bufBin, ["curl", ...args], {
      cwd: repoRoot,
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

// ---- a TCP proxy that trickles the first bytes of each connection, one per write

export interface SlowProxy {
  url: string;
  close(): Promise<void>;
}

export async function slowProxy(targetPort: number, slowBytes = 24, delayMs = 5): Promise<SlowProxy> {
  const pairs = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    upstream.setNoDelay(true); // each trickled byte leaves in its own segment
    pairs.add(client).add(upstream);
    for (const s of [client, upstream]) s.once("close", () => pairs.delete(s));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    upstream.pipe(client);
    let remaining = slowBytes;
    let queue = Promise.resolve();
    client.on("data", (chunk: Buffer) => {
      client.pause();
      queue = queue.then(async () => {
        let offset = 0;
        while (remaining > 0 && offset < chunk.length) {
          upstream.write(chunk.subarray(offset, offset + 1));
          offset++;
          remaining--;
          await new Promise((r) => setTimeout(r, delayMs));
        }
        if (offset < chunk.length) upstream.write(chunk.subarray(offset));
        client.resume();
      });
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const { port } = proxy.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of pairs) s.destroy();
        proxy.close(() => resolve());
      }),
  };
}
