// Admission of long-lived streams (WatchTask, RunStream, Converse, SSE): a cap per
// client connection, so one connection cannot take every slot, and a cap per
// tenant, so one tenant cannot hold all of a replica's memory. Both count streams
// open in this process: a replica protects itself without a round trip to the
// database, and a client turned away can go to another replica.
import { type ContextValues, createContextKey, createContextValues } from "@connectrpc/connect";
import { resourceExhausted } from "../../shared/errors.js";
import type { StreamKind, StreamMetrics } from "./stream-metrics.js";

/** The client connection an RPC arrived on (see `connectionContext`). */
export const connectionKey = createContextKey<object | undefined>(undefined, { description: "client connection" });

/** A Node request as the servers hand it over: HTTP/1.1 or the HTTP/2 compatibility API. */
interface NodeRequestLike {
  socket: object;
  stream?: { session?: object };
}

/** The object that identifies a request's connection: the HTTP/2 session (many streams
 * share it), or the HTTP/1.1 socket. */
export function connectionOf(req: NodeRequestLike): object {
  return req.stream?.session ?? req.socket;
}

/** Context values for an RPC: its connection, for the per-connection cap. */
export function connectionContext(req: NodeRequestLike): ContextValues {
  return createContextValues().set(connectionKey, connectionOf(req));
}

export interface StreamSlot {
  /** Frees the slot. Idempotent. */
  release(): void;
}

export interface StreamLimits {
  /** Takes a slot, or throws RESOURCE_EXHAUSTED (with RetryInfo) naming the limit reached. */
  admit(kind: StreamKind, tenantId: string, connection: object | undefined): StreamSlot;
  open(): number;
}

/** How long a refused client is told to wait: long enough for streams to end, short for a person. */
const RETRY_AFTER_MS = 1000;

export function createStreamLimits(opts: {
  perConnection: number;
  perTenant: number;
  metrics?: StreamMetrics;
}): StreamLimits {
  const byConnection = new WeakMap<object, number>();
  const byTenant = new Map<string, number>();
  const counts: Counts = { byConnection, byTenant, open: 0, metrics: opts.metrics };
  return {
    admit(kind, tenantId, connection) {
      const onConnection = connection ? (byConnection.get(connection) ?? 0) : 0;
      if (onConnection >= opts.perConnection) {
        opts.metrics?.rejected.inc({ limit: "connection" });
        throw resourceExhausted(
          "TOO_MANY_STREAMS_ON_CONNECTION",
          `this connection already has ${onConnection} open streams, the most one connection may hold; ` +
            "close one, or open another connection",
          RETRY_AFTER_MS,
        );
      }
      const ofTenant = byTenant.get(tenantId) ?? 0;
      if (ofTenant >= opts.perTenant) {
        opts.metrics?.rejected.inc({ limit: "tenant" });
        throw resourceExhausted(
          "TOO_MANY_STREAMS",
          `your tenant already has ${ofTenant} open streams on this server, its limit; close some, or retry later`,
          RETRY_AFTER_MS,
        );
      }
      if (connection) byConnection.set(connection, onConnection + 1);
      byTenant.set(tenantId, ofTenant + 1);
      counts.open++;
      opts.metrics?.open.inc({ kind });
      return new Slot(counts, kind, tenantId, connection);
    },
    open: () => counts.open,
  };
}

/** The counts slots are taken from, shared by the slots of one StreamLimits. */
interface Counts {
  byConnection: WeakMap<object, number>;
  byTenant: Map<string, number>;
  open: number;
  metrics: StreamMetrics | undefined;
}

/** A taken slot: an object with its `release` on the prototype, not a closure per stream (a
 * stream keeps its slot for its whole life). */
class Slot implements StreamSlot {
  private released = false;

  constructor(
    private readonly counts: Counts,
    private readonly kind: StreamKind,
    private readonly tenantId: string,
    private readonly connection: object | undefined,
  ) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    const { counts, connection, tenantId } = this;
    if (connection) counts.byConnection.set(connection, (counts.byConnection.get(connection) ?? 1) - 1);
    const left = (counts.byTenant.get(tenantId) ?? 1) - 1;
    if (left > 0) counts.byTenant.set(tenantId, left);
    else counts.byTenant.delete(tenantId);
    counts.open--;
    counts.metrics?.open.dec({ kind: this.kind });
  }
}
