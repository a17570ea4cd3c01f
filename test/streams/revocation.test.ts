// Streams end when their key is revoked: a WatchTask, RunStream, Converse or SSE
// stream opened before the revocation ends within seconds with UNAUTHENTICATED (SSE:
// a final `error` event, then the response ends), in every protocol; streams opened
// with other keys go on.

import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, revokeApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Protocol, startAgentd, type TestAgentd } from "../support/agentd.js";
import { value } from "../support/json.js";
import { converse, grpcAgentClient, grpcTaskClient } from "./grpc-client.js";

let agentd: TestAgentd;
const LONG = { steps: 600, step_delay_ms: 1000 };
/** Generous: the check runs every 2 s; CI machines are slow. */
const ENDS_WITHIN_MS = 20_000;

beforeAll(async () => {
  agentd = await startAgentd({ config: { streamKeepAliveMs: 200 } });
});
afterAll(async () => {
  await agentd?.close();
});

interface Ended {
  code: Code | undefined;
  at: number;
}

/** Reads a Connect-family stream to its end; `opened` resolves at the first message. */
function follow(stream: AsyncIterable<unknown>): { opened: Promise<void>; ended: Promise<Ended> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const ended = (async (): Promise<Ended> => {
    try {
      for await (const _ of stream) open();
      return { code: undefined, at: Date.now() };
    } catch (error) {
      return { code: error instanceof ConnectError ? error.code : Code.Unknown, at: Date.now() };
    }
  })();
  return { opened, ended };
}

/** An SSE stream read with fetch: its named events and when it ended. */
function sse(
  taskId: string,
  key: string,
): { opened: Promise<void>; ended: Promise<{ events: { event?: string; data?: string }[]; at: number }> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const ended = (async () => {
    const res = await fetch(`${agentd.url}/v1/tasks/${taskId}/events`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      if (text.includes("\n\n")) open();
    }
    const events = text
      .split("\n\n")
      .filter((b) => b.trim() !== "")
      .map((block) => {
        const field = (name: string) =>
          block
            .split("\n")
            .find((l) => l.startsWith(`${name}: `))
            ?.slice(name.length + 2);
        return { event: field("event"), data: field("data") };
      });
    return { events, at: Date.now() };
  })();
  return { opened, ended };
}

describe("a revoked API key", () => {
  it("ends the streams it opened within seconds, with UNAUTHENTICATED, in every protocol and over SSE", async () => {
    const doomed = await createApiKey(agentd.db.sql, { tenantId: "t1", scopes: [...SCOPES] });
    const { task } = await agentd.client.tasks.createTask({ agent: "simulate", input: value(LONG) });
    const taskId = task!.id;

    const protocols: Protocol[] = ["connect", "connect-http1", "grpc", "grpc-web"];
    const watches = protocols.map((p) => follow(agentd.clients(doomed.key, p).tasks.watchTask({ taskId })));
    const runStream = follow(
      agentd.clients(doomed.key, "grpc").agents.runStream({ agent: "simulate", input: value(LONG) }),
    );
    const events = sse(taskId, doomed.key);

    // grpc-js, a separate client: Converse attached to the task.
    const conversation = converse(grpcAgentClient(agentd.url), doomed.key);
    conversation.write({ attach: { taskId } });
    const grpcWatch = grpcTaskClient(agentd.url);
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${doomed.key}`);
    const call = grpcWatch.WatchTask({ taskId }, md);
    const grpcWatchStatus = new Promise<{ code: number; at: number }>((resolve) => {
      call.on("status", (s: grpc.StatusObject) => resolve({ code: s.code, at: Date.now() }));
      call.on("error", () => {});
      call.on("data", () => {});
    });

    // A stream with another key of the same tenant is not touched.
    const survivor = follow(agentd.client.tasks.watchTask({ taskId }));

    await Promise.all([...watches.map((w) => w.opened), runStream.opened, events.opened, survivor.opened]);
    await conversation.waitFor(() => true);

    const revokedAt = Date.now();
    await revokeApiKey(agentd.db.sql, doomed.info.keyId);

    for (const w of watches) {
      const end = await w.ended;
      expect(end.code).toBe(Code.Unauthenticated);
      expect(end.at - revokedAt).toBeLessThan(ENDS_WITHIN_MS);
    }
    const rs = await runStream.ended;
    expect(rs.code).toBe(Code.Unauthenticated);
    expect(rs.at - revokedAt).toBeLessThan(ENDS_WITHIN_MS);

    const gw = await grpcWatchStatus;
    expect(gw.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(gw.at - revokedAt).toBeLessThan(ENDS_WITHIN_MS);
    const cs = await conversation.status;
    expect(cs.code).toBe(grpc.status.UNAUTHENTICATED);

    const s = await events.ended;
    expect(s.at - revokedAt).toBeLessThan(ENDS_WITHIN_MS);
    const last = s.events.at(-1)!;
    expect(last.event).toBe("error");
    expect(JSON.parse(last.data!)).toMatchObject({ code: "unauthenticated", reason: "INVALID_API_KEY" });

    // The other key's stream goes on: it still gets keep-alives after all of the above ended.
    const stillOpen = await Promise.race([
      survivor.ended.then(() => false),
      new Promise((r) => setTimeout(() => r(true), 1000)),
    ]);
    expect(stillOpen).toBe(true);

    // And the revoked key opens nothing new.
    const again = follow(agentd.clients(doomed.key, "connect").tasks.watchTask({ taskId }));
    expect((await again.ended).code).toBe(Code.Unauthenticated);

    grpcWatch.close();
    await agentd.client.tasks.cancelTask({ taskId });
    await survivor.ended;
  }, 90_000);
});
