// The wake-up bus across processes: LISTEN/NOTIFY (DESIGN.md rule 3).
// - Payloads carry ids only: {"s": sender, "task": [ids], "queue": [...], ...}.
// - Publishes are collected for a few ms and sent as one pg_notify round trip,
//   on a connection of its own, after the caller's commit and outside any
//   transaction (NOTIFY takes a cluster-wide lock at commit).
// - The connections, the LISTEN side and its canary (which reopens both when
//   the listener goes deaf) are in postgres-listener.ts.
import { randomBytes } from "node:crypto";
import type { Database } from "../db/database.js";
import { toError } from "../errors.js";
import { type Logger, silentLogger } from "../log.js";
import { createLocalWakeupBus, LocalListeners, type WakeupBus, type WakeupTopic } from "./bus.js";
import { openWakeupListener } from "./postgres-listener.js";

export const DEFAULT_WAKEUP_CHANNEL = "agentd_wakeup";

/** Postgres refuses payloads of 8000 bytes or more; stay well below. */
const MAX_PAYLOAD_BYTES = 4000;
/** Ids waiting to be sent; past this (database down for long) they are dropped: hints only. */
const MAX_PENDING_IDS = 50_000;
const WARN_EVERY_MS = 10_000;

/** The Postgres bus for real Postgres; the in-process bus for embedded PGlite,
 * where NOTIFY does not reach other clients. */
export async function createWakeupBus(db: Database, logger?: Logger): Promise<WakeupBus> {
  if (db.embedded) return createLocalWakeupBus();
  return createPostgresWakeupBus({ url: db.url, ...(logger ? { logger } : {}) });
}

export async function createPostgresWakeupBus(opts: {
  url: string;
  logger?: Logger;
  channel?: string;
  /** How long publishes are collected before one NOTIFY goes out (default 2 ms). */
  coalesceMs?: number;
  /** How often the listener sends itself a canary (default 4 s). */
  canaryMs?: number;
  /** A canary not received within this long reopens the listener (default 3.5 s: a lost one is
   * noticed at the next canary, so a dead listener within about 8 s, as with 2 s and 5 s before,
   * at half the idle statements). */
  canaryTimeoutMs?: number;
}): Promise<WakeupBus> {
  const logger = (opts.logger ?? silentLogger()).child({ component: "wakeup-bus" });
  const channel = opts.channel ?? DEFAULT_WAKEUP_CHANNEL;
  const coalesceMs = opts.coalesceMs ?? 2;
  // Our own notifications come back too; they were already delivered locally.
  const sender = randomBytes(6).toString("hex");
  const listeners = new LocalListeners();

  let lastWarn = 0;
  function warn(message: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - lastWarn < WARN_EVERY_MS) return;
    lastWarn = now;
    logger.warn(fields, message);
  }

  const listener = await openWakeupListener({
    url: opts.url,
    logger,
    channel,
    sender,
    listeners,
    canaryMs: opts.canaryMs ?? 4000,
    canaryTimeoutMs: opts.canaryTimeoutMs ?? 3500,
    warn,
  });

  const pending = new Map<WakeupTopic, Set<string>>();
  let pendingCount = 0;
  let timer: NodeJS.Timeout | undefined;
  let sending: Promise<void> | undefined;
  let closed = false;
  let failing = false;

  function schedule(): void {
    if (closed || timer || sending || pendingCount === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      sending = send().finally(() => {
        sending = undefined;
        schedule(); // what arrived while this batch was in flight
      });
    }, coalesceMs);
  }

  // Must not throw: its failure is logged and the batch dropped.
  async function send(): Promise<void> {
    const batch = new Map(pending);
    pending.clear();
    pendingCount = 0;
    try {
      const payloads = encodePayloads(sender, batch, MAX_PAYLOAD_BYTES);
      const sql = listener.sql();
      // One statement, one commit, however many payloads.
      await sql`SELECT pg_notify(${channel}, p) FROM jsonb_array_elements_text(${sql.json(payloads)}) AS p`;
      if (failing) logger.info({ channel }, "wake-up notifications are being sent again");
      failing = false;
    } catch (error) {
      failing = true;
      warn("could not send wake-up notifications; waiters fall back to polling", { err: toError(error), channel });
    }
  }

  return {
    publish(topic, id) {
      if (closed) return;
      queueMicrotask(() => listeners.emit(topic, id));
      let ids = pending.get(topic);
      if (!ids) {
        ids = new Set();
        pending.set(topic, ids);
      }
      if (ids.has(id)) return;
      ids.add(id);
      if (++pendingCount > MAX_PENDING_IDS) {
        warn("too many wake-ups waiting to be sent; dropping them", { dropped: pendingCount });
        pending.clear();
        pendingCount = 0;
        return;
      }
      schedule();
    },
    subscribe: (topic, listener) => listeners.add(topic, listener),
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      listener.stop();
      timer = undefined;
      // The last batch goes out before the connection ends, unless the
      // database is not answering: then it is dropped after a second.
      const last = (async () => {
        await sending;
        if (pendingCount > 0) await send();
      })();
      let giveUp: NodeJS.Timeout | undefined;
      await Promise.race([last, new Promise((resolve) => (giveUp = setTimeout(resolve, 1000)))]);
      clearTimeout(giveUp);
      await listener.end();
    },
  };
}

/** Splits a batch of ids into JSON payloads of at most `maxBytes` bytes. */
export function encodePayloads(
  sender: string,
  batch: ReadonlyMap<WakeupTopic, ReadonlySet<string>>,
  maxBytes: number,
): string[] {
  // No closures in the loops: tsx (bin/agentd.js) names each one with a defineProperty, per id.
  const payloads: string[] = [];
  const base = Buffer.byteLength(JSON.stringify({ s: sender }));
  let current: Partial<Record<WakeupTopic, string[]>> = {};
  let size = base;
  for (const [topic, ids] of batch) {
    // Upper bounds: `,"topic":[]` when the topic is new in a payload, and a comma per id.
    const topicBytes = Buffer.byteLength(JSON.stringify(topic)) + 4;
    for (const id of ids) {
      const idBytes = Buffer.byteLength(JSON.stringify(id)) + 1;
      if (base + topicBytes + idBytes > maxBytes) continue; // an absurd id: not worth a hint
      let list = current[topic];
      if (size + (list ? 0 : topicBytes) + idBytes > maxBytes) {
        payloads.push(JSON.stringify({ s: sender, ...current }));
        current = {};
        size = base;
        list = undefined;
      }
      if (!list) {
        list = [];
        current[topic] = list;
        size += topicBytes;
      }
      size += idBytes;
      list.push(id);
    }
  }
  if (size > base) payloads.push(JSON.stringify({ s: sender, ...current }));
  return payloads;
}
