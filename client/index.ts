// `agentd-server/client` for Node: createClient({baseUrl, key | token, transport}).
// Browsers: import "./browser.js" (no Node modules).
import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { type AgentdClient, authInterceptor, type Credentials, createClientWithTransport } from "./core.js";

export type { Task, TaskEvent } from "../gen/agentd/v1/task_pb.js";
export { TaskState } from "../gen/agentd/v1/task_pb.js";
// Also here because TypeScript resolves the package's types to this entry, browser bundles included.
export { createBrowserClient } from "./browser.js";
export * from "./core.js";
export * from "./errors.js";

export interface ClientOptions {
  /** e.g. http://127.0.0.1:8080 */
  baseUrl: string;
  /** An API key (`agentd_…`). */
  key?: string;
  /** An access token, sent the same way (`authorization: Bearer …`). */
  token?: string;
  /** `grpc` (HTTP/2) or `connect` (JSON-free binary Connect over HTTP/2; `connect-http1` for HTTP/1.1). Default `grpc`. */
  transport?: "grpc" | "connect" | "connect-http1";
  interceptors?: Interceptor[];
}

export function credentialsOf(opts: { key?: string; token?: string }): Credentials {
  if (opts.key) return { key: opts.key };
  if (opts.token) return { token: opts.token };
  return {};
}

export interface NodeAgentdClient extends AgentdClient {
  /** Closes the HTTP/2 connection (an open one keeps a Node process alive until it idles out). */
  close(): void;
}

export function createClient(opts: ClientOptions): NodeAgentdClient {
  const interceptors = [authInterceptor(credentialsOf(opts)), ...(opts.interceptors ?? [])];
  const kind = opts.transport ?? "grpc";
  const sessionManager = kind === "connect-http1" ? undefined : new Http2SessionManager(opts.baseUrl);
  const transport =
    kind === "grpc"
      ? createGrpcTransport({ baseUrl: opts.baseUrl, interceptors, ...(sessionManager ? { sessionManager } : {}) })
      : createConnectTransport({
          baseUrl: opts.baseUrl,
          httpVersion: kind === "connect" ? "2" : "1.1",
          interceptors,
          ...(sessionManager ? { sessionManager } : {}),
        });
  return { ...createClientWithTransport(transport), close: () => sessionManager?.abort() };
}
