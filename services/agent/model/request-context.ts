// What the edge learns about the RPC being served, kept in Connect's context
// values: set by the interceptors (handlers/), read by handlers and observers.
import { createContextKey } from "@connectrpc/connect";
import type { Principal } from "../../shared/auth/authenticator.js";

export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "authenticated caller" });
export const requestIdKey = createContextKey<string>("", { description: "request id" });
