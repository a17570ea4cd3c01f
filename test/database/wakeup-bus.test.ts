// Wake-up hints: in process, and across processes through LISTEN/NOTIFY.
import { connect, createServer, type Socket } from "node:net";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../services/shared/db/database.js";
import { createLocalWakeupBus, type WakeupBus, type WakeupTopic } from "../../services/shared/wakeup/bus.js";
import {
  createPostgresWakeupBus,
  createWakeupBus,
  DEFAULT_WAKEUP_CHANNEL,
  encodePayloads,
} from "../../services/shared/wakeup/postgres-bus.js";
import { createTestDatabase } from "../support/database.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Resolves with the ids heard on `topic` once `count` have arrived. */
function collect(bus: WakeupBus, topic: WakeupTopic) {
  const heard: string[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  bus.subscribe(topic, (id) => {
    heard.push(id);
    for (const w of waiters.filter((w) => heard.length >= w.count)) w.resolve();
  });
  return {
    heard,
    until: (count: number, ms = 5_000) =>
      new Promise<void>((resolve, reject) => {
        if (heard.length >= count) return resolve();
        const timer = setTimeout(() => reject(new Error(`heard ${heard.length} of ${count} hints in ${ms} ms`)), ms);
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      }),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("local wake-up bus", () => {
  it("delivers a hint to the subscribers of its topic only, until they unsubscribe", async () => {
    const bus = createLocalWakeupBus();
    const tasks = collect(bus, "task");
    const queue = collect(bus, "queue");
    const heardBeforeUnsubscribe: string[] = [];
    const unsubscribe = bus.subscribe("task", (id) => heardBeforeUnsubscribe.push(id));

    bus.publish("task", "t1");
    await tasks.until(1);
    unsubscribe();
    bus.publish("task", "t2");
    await tasks.until(2);

    expect(tasks.heard).toEqual(["t1", "t2"]);
    expect(heardBeforeUnsubscribe).toEqual(["t1"]);
    expect(queue.heard).toEqual([]);
  });

  it("is what createWakeupBus picks for the embedded database", async () => {
    const bus = await createWakeupBus({ embedded: true, url: "postgres://unused" } as Database);
    const tasks = collect(bus, "task");
    bus.publish("task", "t1");
    await tasks.until(1);
    await bus.close();
  });
});

describe("wake-up payloads", () => {
  it("carry every id, split so that each stays below the byte limit", () => {
    const ids = Array.from({ length: 500 }, (_, i) => `0190c7d4-0000-7000-8000-${String(i).padStart(12, "0")}`);
    const batch = new Map<WakeupTopic, Set<string>>([
      ["task", new Set(ids)],
      ["queue", new Set(ids.slice(0, 7))],
    ]);
    const payloads = encodePayloads("abc", batch, 4000);

    expect(payloads.length).toBeGreaterThan(1);
    for (const p of payloads) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(4000);
    const decoded = payloads.map((p) => JSON.parse(p) as { s: string; task?: string[]; queue?: string[] });
    expect(decoded.every((d) => d.s === "abc")).toBe(true);
    expect(decoded.flatMap((d) => d.task ?? [])).toEqual(ids);
    expect(decoded.flatMap((d) => d.queue ?? [])).toEqual(ids.slice(0, 7));
  });

  it("fit one id per payload even when the limit is tiny, and skip nothing else", () => {
    const payloads = encodePayloads("s", new Map([["task", new Set(["a", "b"])]]), 25);
    expect(payloads.map((p) => JSON.parse(p))).toEqual([
      { s: "s", task: ["a"] },
      { s: "s", task: ["b"] },
    ]);
  });

  it("send nothing for an empty batch, and leave out only an id that fits no payload", () => {
    expect(encodePayloads("s", new Map(), 4000)).toEqual([]);
    const huge = "x".repeat(100);
    const payloads = encodePayloads(
      "s",
      new Map<WakeupTopic, Set<string>>([
        ["task", new Set(["a", huge])],
        ["queue", new Set(["b"])],
      ]),
      40,
    );
    expect(payloads.map((p) => JSON.parse(p))).toEqual([{ s: "s", task: ["a"], queue: ["b"] }]);
  });
});

// A TCP relay to Postgres whose connections the test can cut, to play a network failure.
async function startRelay(target: URL) {
  const sockets = new Set<Socket>();
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return {
    url(databaseUrl: string) {
      const url = new URL(databaseUrl);
      url.hostname = "127.0.0.1";
      url.port = String(address.port);
      return url.toString();
    },
    /** Stops relaying on the open connections without closing them: a server gone silent, no reset. */
    freeze() {
      for (const s of sockets) {
        s.unpipe();
        s.pause();
      }
    },
    cut(opts: { refuseFor?: number } = {}) {
      for (const s of sockets) s.destroy();
      if (opts.refuseFor) {
        refusing = true;
        setTimeout(() => (refusing = false), opts.refuseFor);
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe.skipIf(!process.env.DATABASE_URL)("Postgres wake-up bus", () => {
  async function setup() {
    const test = await createTestDatabase();
    cleanups.push(() => test.drop());
    const bus = async (url = test.url!) => {
      const b = await createPostgresWakeupBus({ url });
      cleanups.push(() => b.close());
      return b;
    };
    // A plain LISTEN client that counts NOTIFYs as Postgres sends them.
    const spy = postgres(test.url!, { max: 1, onnotice: () => {} });
    cleanups.push(() => spy.end());
    const notifications: string[] = [];
    await spy.listen(DEFAULT_WAKEUP_CHANNEL, (payload) => notifications.push(payload));
    return { url: test.url!, bus, notifications };
  }

  it("carries a hint from one bus to another (two connections) within milliseconds", async () => {
    const { bus } = await setup();
    const a = await bus();
    const b = await bus();
    const heard = collect(b, "task");

    const started = performance.now();
    a.publish("task", "0190c7d4-0000-7000-8000-000000000001");
    await heard.until(1);
    const ms = performance.now() - started;

    expect(heard.heard).toEqual(["0190c7d4-0000-7000-8000-000000000001"]);
    // Typically 2–5 ms (the coalescing window plus a round trip); far below the 1 s poll.
    expect(ms).toBeLessThan(500);
  });

  it("coalesces a burst of publishes into one NOTIFY, and hears its own only once", async () => {
    const { bus, notifications } = await setup();
    const a = await bus();
    const b = await bus();
    const heardByB = collect(b, "queue");
    const heardByA = collect(a, "queue");
    const ids = Array.from({ length: 40 }, (_, i) => `id-${i}`);

    for (const id of ids) a.publish("queue", id);
    for (const id of ids.slice(0, 10)) a.publish("queue", id); // repeats within the window are dropped
    await heardByB.until(40);
    for (let waited = 0; notifications.length === 0 && waited < 5000; waited += 20) await sleep(20);
    await sleep(100); // a second NOTIFY, if any, would have arrived by now

    expect(notifications).toHaveLength(1);
    expect(JSON.parse(notifications[0]!).queue).toEqual(ids);
    expect(heardByB.heard).toEqual(ids);
    // Locally at once, each publish; its own echo from Postgres is not delivered again.
    expect(heardByA.heard).toEqual([...ids, ...ids.slice(0, 10)]);
  });

  it("splits a large burst into several payloads below Postgres' 8000-byte limit", async () => {
    const { bus, notifications } = await setup();
    const a = await bus();
    const b = await bus();
    const heard = collect(b, "task");
    const ids = Array.from({ length: 1000 }, (_, i) => `0190c7d4-0000-7000-8000-${String(i).padStart(12, "0")}`);

    for (const id of ids) a.publish("task", id);
    await heard.until(1000);
    // The spy has its own connection: its copies may come a moment later.
    const spied = () => notifications.flatMap((p) => (JSON.parse(p) as { task?: string[] }).task ?? []);
    for (let waited = 0; spied().length < 1000 && waited < 5000; waited += 20) await sleep(20);

    expect(heard.heard).toEqual(ids);
    expect(spied()).toEqual(ids);
    expect(notifications.length).toBeGreaterThan(1);
    expect(notifications.length).toBeLessThan(30);
    for (const payload of notifications) expect(Buffer.byteLength(payload)).toBeLessThan(8000);
  });

  it("listens again by itself after its connection is cut", async () => {
    const { url, bus } = await setup();
    const relay = await startRelay(new URL(url));
    cleanups.push(() => relay.close());
    const a = await bus();
    const b = await bus(relay.url(url));
    const heard = collect(b, "delivery");

    relay.cut({ refuseFor: 300 });
    // Hints sent while b is away are lost (waiters poll); keep sending until it is back.
    const deadline = Date.now() + 10_000;
    for (let i = 0; heard.heard.length === 0 && Date.now() < deadline; i++) {
      a.publish("delivery", `d${i}`);
      await sleep(50);
    }
    expect(heard.heard.length).toBeGreaterThan(0);
  });

  it("reopens its listener by itself when its connection goes silent (missed canary)", async () => {
    const { url, bus } = await setup();
    const relay = await startRelay(new URL(url));
    cleanups.push(() => relay.close());
    const a = await bus();
    const b = await createPostgresWakeupBus({ url: relay.url(url), canaryMs: 200, canaryTimeoutMs: 1000 });
    cleanups.push(() => b.close());
    const heard = collect(b, "task");

    // Postgres's notifications no longer reach b, yet nothing tells postgres.js: only the canary notices.
    relay.freeze();
    const deadline = Date.now() + 20_000;
    for (let i = 0; heard.heard.length === 0 && Date.now() < deadline; i++) {
      a.publish("task", `t${i}`);
      await sleep(100);
    }
    expect(heard.heard.length).toBeGreaterThan(0);
  });

  it("publish never throws or waits, even with the database gone", async () => {
    const { url } = await setup();
    const relay = await startRelay(new URL(url));
    cleanups.push(() => relay.close());
    const a = await createPostgresWakeupBus({ url: relay.url(url) });
    const local = collect(a, "task");

    relay.cut({ refuseFor: 60_000 });
    const started = performance.now();
    for (let i = 0; i < 1000; i++) a.publish("task", `t${i}`);
    expect(performance.now() - started).toBeLessThan(50);
    await local.until(1000); // local listeners still hear every hint
    await sleep(50);
    await a.close();
  });
});
