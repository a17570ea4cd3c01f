// Connect-Web clients for agentd on this origin, with the signed-in credential (an API key or an
// access token: both are Bearer values) kept in sessionStorage, never in the URL.
import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AgentService } from "../../../gen/agentd/v1/agent_service_pb.js";
import { TaskService } from "../../../gen/agentd/v1/task_service_pb.js";
import { WebhookService } from "../../../gen/agentd/v1/webhook_service_pb.js";
import { ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";

const STORAGE_KEY = "agentd.credential";

export const credential = {
  get: (): string | null => sessionStorage.getItem(STORAGE_KEY),
  set: (value: string) => sessionStorage.setItem(STORAGE_KEY, value),
  clear: () => sessionStorage.removeItem(STORAGE_KEY),
};

/** Called when the server refuses the credential (expired, revoked, unknown). */
let onRefused: (err: ConnectError) => void = () => {};
export function onCredentialRefused(fn: (err: ConnectError) => void) {
  onRefused = fn;
}

const bearer: Interceptor = (next) => async (req) => {
  const value = credential.get();
  if (value) req.header.set("authorization", `Bearer ${value}`);
  try {
    return await next(req);
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.Unauthenticated) onRefused(e);
    throw err;
  }
};

const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [bearer] });
const client = <S extends DescService>(s: S): Client<S> => createClient(s, transport);

export const api = {
  agents: client(AgentService),
  tasks: client(TaskService),
  webhooks: client(WebhookService),
};

export interface ShownError {
  code: string;
  reason: string;
  message: string;
  /** The credential is refused or lacks a scope: offer to sign in again. */
  credential: boolean;
}

/** An error as the console shows it: its Connect code, the ErrorInfo reason when there is one, the message. */
export function describeError(err: unknown): ShownError {
  const e = ConnectError.from(err);
  const info = e.findDetails(ErrorInfoSchema)[0];
  const code = Code[e.code] ?? String(e.code);
  return {
    code: code.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase(),
    reason: info?.reason ?? "",
    message: e.rawMessage,
    credential: e.code === Code.Unauthenticated || e.code === Code.PermissionDenied,
  };
}

export function isAbort(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}
