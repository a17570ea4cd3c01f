// Access tokens (AuthService.CreateAccessToken): minted from a key, accepted wherever a key
// is (Connect, gRPC metadata, gRPC-Web, SSE), limited to tasks/agents, never wider than their
// minter, ending at expiry or when the parent key is revoked (streams too).
import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/agentd/v1/auth_service_pb.js";
import { KeyService } from "../../gen/agentd/v1/key_service_pb.js";
import { createApiKey, revokeApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Protocol, startAgentd, type TestAgentd, transportFor } from "../support/agentd.js";
import { errorInfo, expectCode } from "../support/expect.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";

let agentd: TestAgentd;
const LONG = { steps: 600, step_delay_ms: 1000 };
beforeAll(async () => {
  agentd = await startAgentd({ config: { streamKeepAliveMs: 200 } });
});
afterAll(async () => {
  await agentd?.close();
});

const auth = (credential: string, protocol: Protocol = "connect") =>
  createClient(AuthService, transportFor(agentd.url, protocol, credential));

const codeOf = (p: Promise<unknown>) =>
  p
    .then(
      () => Code.Unknown as Code | "ok",
      (e) => (e instanceof ConnectError ? e.code : Code.Unknown),
    )
    .then((c) => c);
const okOr = (p: Promise<unknown>) =>
  p.then(
    () => "ok" as const,
    (e: unknown) => (e instanceof ConnectError ? e.code : Code.Unknown),
  );

describe("access tokens", () => {
  it("a task-limited token reads its task in every protocol and SSE; other tasks are NOT_FOUND; ListTasks lists only it", async () => {
    const mine = (await agentd.client.tasks.createTask({ agent: "simulate", input: value({ steps: 1 }) })).task!;
    const other = (await agentd.client.tasks.createTask({ agent: "simulate", input: value({ steps: 1 }) })).task!;
    const minted = await auth(agentd.key).createAccessToken({
      scopes: ["tasks:read", "tasks:write"],
      taskIds: [mine.id],
    });
    expect(minted.accessToken).not.toContain(agentd.key);
    expect(minted.scopes.sort()).toEqual(["tasks:read", "tasks:write"]);
    expect(minted.taskIds).toEqual([mine.id]);
    const ttl = timestampDate(minted.expireTime!).getTime() - Date.now();
    expect(ttl).toBeGreaterThan(10 * 60_000);
    expect(ttl).toBeLessThanOrEqual(15 * 60_000);

    for (const protocol of ["connect", "connect-http1", "grpc", "grpc-web"] as Protocol[]) {
      const c = agentd.clients(minted.accessToken, protocol);
      expect((await c.tasks.getTask({ taskId: mine.id })).task?.id).toBe(mine.id);
      await expectCode(c.tasks.getTask({ taskId: other.id }), Code.NotFound);
      await expectCode(c.tasks.cancelTask({ taskId: other.id }), Code.NotFound);
      expect((await c.tasks.listTasks({})).tasks.map((t) => t.id)).toEqual([mine.id]);
      const denied = await expectCode(c.tasks.createTask({ agent: "simulate" }), Code.PermissionDenied);
      expect(errorInfo(denied)?.reason).toBe("TOKEN_LIMITED_TO_TASKS");
      // Scopes not given are not there.
      await expectCode(c.agents.run({ agent: "simulate" }), Code.PermissionDenied);
      // Streams: its task, yes; another, NOT_FOUND.
      const events = [];
      for await (const r of c.tasks.watchTask({ taskId: mine.id })) if (r.event) events.push(r.event);
      expect(events.length).toBeGreaterThan(1);
      await expectCode(
        (async () => {
          for await (const _ of c.tasks.watchTask({ taskId: other.id }));
        })(),
        Code.NotFound,
      );
    }
    const sse = (id: string) =>
      fetch(`${agentd.url}/v1/tasks/${id}/events`, { headers: { authorization: `Bearer ${minted.accessToken}` } });
    const ok = await sse(mine.id);
    expect([200, 204]).toContain(ok.status);
    await ok.body?.cancel();
    expect((await sse(other.id)).status).toBe(404);
  });

  it("never mints a wider token: scopes, tasks, agents, expiry", async () => {
    const readOnly = await agentd.createKey("t1", ["tasks:read"]);
    const e1 = await expectCode(auth(readOnly).createAccessToken({ scopes: ["tasks:write"] }), Code.PermissionDenied);
    expect(errorInfo(e1)?.reason).toBe("TOKEN_WIDENING");

    const task = (await agentd.client.tasks.createTask({ agent: "simulate" })).task!;
    const other = (await agentd.client.tasks.createTask({ agent: "simulate" })).task!;
    const narrow = await auth(agentd.key).createAccessToken({
      scopes: ["tasks:read"],
      taskIds: [task.id],
      ttl: durationFromMs(60_000),
    });
    const viaToken = auth(narrow.accessToken, "grpc");
    await expectCode(viaToken.createAccessToken({ scopes: ["tasks:write"] }), Code.PermissionDenied);
    await expectCode(viaToken.createAccessToken({ taskIds: [other.id] }), Code.PermissionDenied);
    await expectCode(viaToken.createAccessToken({ ttl: durationFromMs(3_600_000) }), Code.PermissionDenied);
    // Asking for nothing inherits everything the caller has, no more.
    const child = await viaToken.createAccessToken({});
    expect(child.scopes).toEqual(["tasks:read"]);
    expect(child.taskIds).toEqual([task.id]);
    expect(timestampDate(child.expireTime!).getTime()).toBeLessThanOrEqual(timestampDate(narrow.expireTime!).getTime());
    await expectCode(agentd.clients(child.accessToken).tasks.getTask({ taskId: other.id }), Code.NotFound);

    const agentsOnly = await auth(agentd.key).createAccessToken({ agents: ["summarize"] });
    await expectCode(auth(agentsOnly.accessToken).createAccessToken({ agents: ["simulate"] }), Code.PermissionDenied);
    const run = await expectCode(
      agentd.clients(agentsOnly.accessToken).agents.run({ agent: "simulate" }),
      Code.PermissionDenied,
    );
    expect(errorInfo(run)?.reason).toBe("TOKEN_LIMITED_TO_AGENTS");
    await expectCode(
      agentd.clients(agentsOnly.accessToken).tasks.createTask({ agent: "simulate" }),
      Code.PermissionDenied,
    );
    expect(
      (
        await agentd
          .clients(agentsOnly.accessToken)
          .tasks.createTask({ agent: "summarize", input: value({ text: "a b c" }) })
      ).task?.agent,
    ).toBe("summarize");
  });

  it("never mints an API key, even with keys:manage: a key would outlive the token and its limits", async () => {
    const { accessToken, scopes } = await auth(agentd.key).createAccessToken({ ttl: durationFromMs(60_000) });
    expect(scopes).toContain("keys:manage");
    for (const protocol of ["connect", "grpc", "grpc-web"] as Protocol[]) {
      const keys = createClient(KeyService, transportFor(agentd.url, protocol, accessToken));
      for (const request of [{ scopes: ["tasks:read"] }, { scopes: ["all"], name: "escape" }]) {
        const denied = await expectCode(keys.createKey(request), Code.PermissionDenied);
        expect(errorInfo(denied)?.reason).toBe("TOKEN_CANNOT_CREATE_KEYS");
      }
    }
    const keys = createClient(KeyService, transportFor(agentd.url, "connect", agentd.key));
    expect((await keys.listKeys({})).keys.some((k) => k.name === "escape")).toBe(false);
    // The key itself still creates keys.
    expect((await keys.createKey({ scopes: ["tasks:read"] })).secret).toMatch(/^agentd_/);
  });

  it("refuses bad requests with INVALID_ARGUMENT and bad tokens with UNAUTHENTICATED", async () => {
    const c = auth(agentd.key);
    await expectCode(c.createAccessToken({ scopes: ["root"] }), Code.InvalidArgument);
    await expectCode(c.createAccessToken({ taskIds: ["nope"] }), Code.InvalidArgument);
    await expectCode(c.createAccessToken({ ttl: durationFromMs(25 * 3_600_000) }), Code.InvalidArgument);
    await expectCode(c.createAccessToken({ ttl: durationFromMs(-1000) }), Code.InvalidArgument);
    const { accessToken } = await c.createAccessToken({});
    const forged = `${accessToken.slice(0, -4)}AAAA`;
    const e = await expectCode(agentd.clients(forged).tasks.listTasks({}), Code.Unauthenticated);
    expect(errorInfo(e)?.reason).toBe("INVALID_ACCESS_TOKEN");
  });

  it("stops working at expiry; a stream opened with it ends", async () => {
    const task = (await agentd.client.tasks.createTask({ agent: "simulate", input: value(LONG) })).task!;
    const { accessToken } = await auth(agentd.key).createAccessToken({
      scopes: ["tasks:read"],
      ttl: durationFromMs(3000),
    });
    const c = agentd.clients(accessToken, "grpc");
    expect((await c.tasks.getTask({ taskId: task.id })).task?.id).toBe(task.id);
    const stream = okOr(
      (async () => {
        for await (const _ of c.tasks.watchTask({ taskId: task.id }));
      })(),
    );
    expect(await stream).toBe(Code.Unauthenticated);
    expect(await okOr(c.tasks.getTask({ taskId: task.id }))).toBe(Code.Unauthenticated);
    await agentd.client.tasks.cancelTask({ taskId: task.id });
  }, 30_000);

  it("never outlives its key: minted to end by the key's expiry, and refused once the key has expired", async () => {
    const keyExpiry = new Date(Date.now() + 4000);
    const parent = await createApiKey(agentd.db.sql, { tenantId: "t1", scopes: [...SCOPES], expireTime: keyExpiry });
    const e = await expectCode(
      auth(parent.key).createAccessToken({ ttl: durationFromMs(3_600_000) }),
      Code.PermissionDenied,
    );
    expect(errorInfo(e)?.reason).toBe("TOKEN_WIDENING");
    // The default 15 minutes is cut to the key's own end, and the response says so.
    const minted = await auth(parent.key).createAccessToken({ scopes: ["tasks:read"] });
    expect(timestampDate(minted.expireTime!).getTime()).toBeLessThanOrEqual(keyExpiry.getTime());
    const child = await auth(minted.accessToken).createAccessToken({});
    expect(timestampDate(child.expireTime!).getTime()).toBeLessThanOrEqual(keyExpiry.getTime());
    expect(await okOr(agentd.clients(minted.accessToken).tasks.listTasks({}))).toBe("ok");
    await until(
      () => codeOf(agentd.clients(minted.accessToken).tasks.listTasks({})),
      (code) => code === Code.Unauthenticated,
      20_000,
    );
  }, 30_000);

  it("stops working when its parent key is revoked: unary calls, gRPC streams and SSE", async () => {
    const parent = await createApiKey(agentd.db.sql, { tenantId: "t1", scopes: [...SCOPES] });
    const task = (await agentd.client.tasks.createTask({ agent: "simulate", input: value(LONG) })).task!;
    const { accessToken } = await auth(parent.key).createAccessToken({ scopes: ["tasks:read"], taskIds: [task.id] });
    const c = agentd.clients(accessToken, "grpc-web");
    expect((await c.tasks.getTask({ taskId: task.id })).task?.id).toBe(task.id);
    let opened!: () => void;
    const open = new Promise<void>((r) => {
      opened = r;
    });
    const stream = okOr(
      (async () => {
        for await (const _ of c.tasks.watchTask({ taskId: task.id })) opened();
      })(),
    );
    const sse = (async () => {
      const res = await fetch(`${agentd.url}/v1/tasks/${task.id}/events`, {
        headers: { authorization: `Bearer ${accessToken}` },
      });
      expect(res.status).toBe(200);
      return await res.text();
    })();
    await open;
    await revokeApiKey(agentd.db.sql, parent.info.keyId);
    expect(await stream).toBe(Code.Unauthenticated);
    expect(await sse).toMatch(/event: error/);
    await until(
      () => codeOf(c.tasks.getTask({ taskId: task.id })),
      (code) => code === Code.Unauthenticated,
      20_000,
    );
    await agentd.client.tasks.cancelTask({ taskId: task.id });
  }, 40_000);
});
