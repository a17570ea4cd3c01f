// The Postgres wake-up bus's connections (see postgres-bus.ts) and its LISTEN side.
// - One dedicated LISTEN connection per bus. postgres.js re-issues LISTEN by
//   itself when that connection drops, with backoff (sql.listen re-listens from
//   the listener client's onclose; checked in postgres 3.4.9 src/index.js and
//   by test). Hints lost meanwhile only delay: every waiter also polls.
// - The same client holds the publisher's connection, which the bus borrows
//   through `sql()`: a reopen replaces both.
// - Both connections go to the writable primary of a multi-host URL (the
//   database layer's primary locator), so after a failover LISTEN is issued
//   again on the promoted server.
// - The listener verifies itself: a canary NOTIFY on its own channel every
//   `canaryMs`, which it must receive; when one sent is not back within
//   `canaryTimeoutMs` (a LISTEN connection stuck on a dead or demoted server),
//   the bus reopens both connections.
import { createPrimaryClient, type Sql } from "../db/database.js";
import { toError } from "../errors.js";
import type { Logger } from "../log.js";
import type { LocalListeners, WakeupTopic } from "./bus.js";

const TOPICS: readonly WakeupTopic[] = ["task", "queue", "delivery"];

export interface WakeupListener {
  /** The publisher's connection of the current client (it changes on reopen). */
  sql(): Sql;
  /** Stops the canary and any further reopen; the connections stay until end(). */
  stop(): void;
  end(): Promise<void>;
}

export async function openWakeupListener(opts: {
  url: string;
  logger: Logger;
  channel: string;
  /** Our own notifications come back too; they were already delivered locally. */
  sender: string;
  listeners: LocalListeners;
  canaryMs: number;
  canaryTimeoutMs: number;
  /** The bus's rate-limited warning, shared with its sender. */
  warn(message: string, fields: Record<string, unknown>): void;
}): Promise<WakeupListener> {
  const { logger, channel, sender, canaryTimeoutMs, warn } = opts;
  let canarySeq = 0;
  /** Canaries sent and not yet received: sequence → when sent. */
  const canariesOut = new Map<number, number>();
  let lastCanaryReceived = 0;
  let closed = false;

  let listens = 0;
  async function open(): Promise<{ sql: Sql; end(): Promise<void> }> {
    // max 1: the publisher's connection. sql.listen opens one more, its own.
    const client = createPrimaryClient(
      opts.url,
      { max: 1, idle_timeout: 0, onnotice: () => {}, connection: { application_name: "agentd-wakeup" } },
      logger,
      // The LISTEN connection was on the old primary; postgres.js tries to listen again only once.
      { onPrimaryMoved: () => queueMicrotask(() => void reopen().catch(() => {})) },
    );
    try {
      await client.sql.listen(channel, onNotification, () => {
        if (listens++ > 0) logger.info({ channel }, "wake-up listener (re)connected");
      });
    } catch (error) {
      await client.end().catch(() => {});
      throw new Error(`cannot LISTEN on ${channel}`, { cause: error });
    }
    return client;
  }
  let client = await open();
  let sql = client.sql;
  let reopening = false;

  async function reopen(): Promise<void> {
    if (reopening || closed) return;
    reopening = true;
    canariesOut.clear();
    try {
      const fresh = await open();
      const old = client;
      client = fresh;
      sql = fresh.sql;
      if (closed) await fresh.end().catch(() => {});
      await old.end().catch(() => {});
      logger.info({ channel }, "wake-up listener reopened");
    } catch (error) {
      warn("could not reopen the wake-up listener; waiters fall back to polling", { err: toError(error), channel });
    } finally {
      reopening = false;
    }
  }

  async function sendCanary(): Promise<void> {
    const now = Date.now();
    for (const sentAt of canariesOut.values()) {
      if (now - sentAt > canaryTimeoutMs) {
        warn("the wake-up listener missed its canary; reopening it", { channel });
        await reopen();
        return;
      }
    }
    const seq = ++canarySeq;
    const outcome = await notifyWithin(sql, channel, JSON.stringify({ s: sender, canary: seq }), canaryTimeoutMs);
    // Only a canary the server took can be missed.
    if (outcome === "sent" && seq > lastCanaryReceived) canariesOut.set(seq, Date.now());
    if (outcome === "stuck") {
      // No answer at all (a server gone without a reset): fresh connections.
      warn("the wake-up publisher's connection does not answer; reopening it", { channel });
      await reopen();
    }
  }
  let canaryTimer: NodeJS.Timeout | undefined;
  const canaryLoop = () => {
    canaryTimer = setTimeout(() => {
      sendCanary().finally(() => {
        if (!closed) canaryLoop();
      });
    }, opts.canaryMs);
    canaryTimer.unref?.();
  };

  function onNotification(payload: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(payload) as Record<string, unknown>;
    } catch {
      logger.debug({ payload }, "ignoring a wake-up payload that is not JSON");
      return;
    }
    if (message.s === sender) {
      if (typeof message.canary === "number") {
        lastCanaryReceived = Math.max(lastCanaryReceived, message.canary);
        for (const seq of canariesOut.keys()) if (seq <= message.canary) canariesOut.delete(seq);
      }
      return;
    }
    emitRemote(opts.listeners, message);
  }

  canaryLoop();
  return {
    sql: () => sql,
    stop() {
      closed = true;
      clearTimeout(canaryTimer);
    },
    end: () => client.end(),
  };
}

/** One NOTIFY, raced against `timeoutMs`: "stuck" when the server has not answered by then. */
async function notifyWithin(
  sql: Sql,
  channel: string,
  payload: string,
  timeoutMs: number,
): Promise<"sent" | "refused" | "stuck"> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<"stuck">((resolve) => (timer = setTimeout(() => resolve("stuck"), timeoutMs)));
  const sent = sql`SELECT pg_notify(${channel}, ${payload})`.then(
    () => "sent" as const,
    // Refused: the database is away (postgres.js reconnects); nothing to verify until it is back.
    () => "refused" as const,
  );
  const outcome = await Promise.race([sent, stuck]);
  clearTimeout(timer);
  return outcome;
}

/** Hands the ids of another bus's payload to the local listeners. */
function emitRemote(listeners: LocalListeners, message: Record<string, unknown>): void {
  for (const topic of TOPICS) {
    const ids = message[topic];
    if (!Array.isArray(ids)) continue;
    for (const id of ids) if (typeof id === "string") listeners.emit(topic, id, "remote");
  }
}
