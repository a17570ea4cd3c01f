// `agentd-server/client` (browser condition): the same client for browsers. Bring a fetch-based
// transport, e.g. `createConnectTransport({ baseUrl })` from @connectrpc/connect-web.
import type { Interceptor, Transport } from "@connectrpc/connect";
import { type AgentdClient, authInterceptor, createClientWithTransport } from "./core.js";

export type { Task, TaskEvent } from "../gen/agentd/v1/task_pb.js";
export { TaskState } from "../gen/agentd/v1/task_pb.js";
export * from "./core.js";
export * from "./errors.js";

/** `makeTransport` receives the interceptors that add the token and decode errors; pass them on. */
export function createBrowserClient(opts: {
  token?: string;
  key?: string;
  makeTransport: (interceptors: Interceptor[]) => Transport;
}): AgentdClient {
  const credentials = opts.token ? { token: opts.token } : opts.key ? { key: opts.key } : {};
  return createClientWithTransport(opts.makeTransport([authInterceptor(credentials)]));
}
