// The typed agentd client (client/browser.ts) over Connect-Web on this origin, with the signed-in
// credential (an API key or an access token: both are Bearer values) kept in sessionStorage,
// never in the URL, and read at every call so that signing in again takes effect at once.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { createBrowserClient } from "../../../client/browser.js";
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

const client = createBrowserClient({
  makeTransport: (interceptors) =>
    createConnectTransport({ baseUrl: location.origin, interceptors: [bearer, ...interceptors] }),
});

export const api = { agents: client.agents, tasks: client.tasks, webhooks: client.webhooks };

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
