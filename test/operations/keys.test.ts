// KeyService while the server runs: keys of the caller's tenant, scope
// keys:manage, expiry, and events that record which key caused them.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyService } from "../../gen/agentd/v1/key_service_pb.js";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { startAgentd, type TestAgentd, transportFor } from "../support/agentd.js";
import { errorInfo, expectCode } from "../support/expect.js";
import { value } from "../support/json.js";

let agentd: TestAgentd;
const keysOf = (key: string) => createClient(KeyService, transportFor(agentd.url, "connect", key));

beforeAll(async () => {
  agentd = await startAgentd();
});
afterAll(async () => {
  await agentd?.close();
});

describe("KeyService", () => {
  it("creates a working key in the caller's tenant, lists it without the secret, and revokes it", async () => {
    const admin = keysOf(agentd.key);
    const { key, secret } = await admin.createKey({ scopes: ["tasks:read"], name: "reader" });
    expect(secret).toMatch(/^agentd_/);
    expect(key?.scopes).toEqual(["tasks:read"]);
    expect(key?.prefix && secret.startsWith(key.prefix)).toBe(true);

    await agentd.clients(secret).tasks.listTasks({});
    await expectCode(agentd.clients(secret).tasks.createTask({ agent: "simulate" }), Code.PermissionDenied);
    // Without keys:manage the KeyService is closed.
    const denied = await expectCode(keysOf(secret).listKeys({}), Code.PermissionDenied);
    expect(errorInfo(denied)?.reason).toBe("MISSING_SCOPE");

    const { keys } = await admin.listKeys({});
    expect(keys.map((k) => k.id)).toContain(key!.id);
    expect(JSON.stringify(keys.map((k) => ({ ...k, createTime: undefined })))).not.toContain(secret);

    const revoked = await admin.revokeKey({ keyId: key!.id });
    expect(revoked.key?.revokeTime).toBeDefined();
    expect((await admin.revokeKey({ keyId: key!.id })).key?.revokeTime).toEqual(revoked.key?.revokeTime);
    // The authenticator caches a key for at most 4 s.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const refused = await agentd
        .clients(secret)
        .tasks.listTasks({})
        .then(
          () => false,
          (e: { code?: Code }) => e.code === Code.Unauthenticated,
        );
      if (refused) break;
      if (Date.now() > deadline) throw new Error("the revoked key still works");
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  it("`all` grants the caller's scopes; a scope the caller lacks is refused; bad fields are INVALID_ARGUMENT", async () => {
    const admin = keysOf(agentd.key);
    const { key, secret } = await admin.createKey({ scopes: ["all"] });
    expect(key?.scopes).toContain("keys:manage");
    const limited = (await keysOf(secret).createKey({ scopes: ["keys:manage", "tasks:read"] })).secret;
    const err = await expectCode(keysOf(limited).createKey({ scopes: ["tasks:write"] }), Code.PermissionDenied);
    expect(errorInfo(err)?.reason).toBe("SCOPE_NOT_HELD");
    await expectCode(admin.createKey({ scopes: [] }), Code.InvalidArgument);
    await expectCode(admin.createKey({ scopes: ["tasks:destroy"] }), Code.InvalidArgument);
    await expectCode(
      admin.createKey({ scopes: ["tasks:read"], expireTime: timestampFromDate(new Date(Date.now() - 1000)) }),
      Code.InvalidArgument,
    );
    await expectCode(admin.revokeKey({ keyId: "" }), Code.InvalidArgument);
    await expectCode(admin.revokeKey({ keyId: "nope" }), Code.NotFound);
  });

  it("another tenant's keys are neither listed nor revocable", async () => {
    const other = keysOf(await agentd.createKey("t2"));
    const { key } = await other.createKey({ scopes: ["tasks:read"] });
    const mine = await keysOf(agentd.key).listKeys({});
    expect(mine.keys.map((k) => k.id)).not.toContain(key!.id);
    await expectCode(keysOf(agentd.key).revokeKey({ keyId: key!.id }), Code.NotFound);
  });

  it("a key with an expiry works until it passes, then is refused", async () => {
    const { secret, key } = await keysOf(agentd.key).createKey({
      scopes: ["tasks:read"],
      expireTime: timestampFromDate(new Date(Date.now() + 1500)),
    });
    expect(key?.expireTime).toBeDefined();
    await agentd.clients(secret).tasks.listTasks({});
    await new Promise((r) => setTimeout(r, 1700));
    await expectCode(agentd.clients(secret).tasks.listTasks({}), Code.Unauthenticated);
  });
});

describe("TaskEvent.actor", () => {
  it("records which key created and which cancelled a task; the runner's events have none", async () => {
    const admin = keysOf(agentd.key);
    const creator = await admin.createKey({ scopes: ["tasks:write", "tasks:read"], name: "creator" });
    const canceller = await admin.createKey({ scopes: ["tasks:write"], name: "canceller" });
    const { task } = await agentd.clients(creator.secret).tasks.createTask({
      agent: "simulate",
      input: value({ steps: 50, step_delay_ms: 100 }),
    });
    // Wait until a runner has started it, so the log has service-written events too.
    for (let i = 0; i < 100; i++) {
      const { task: t } = await agentd.client.tasks.getTask({ taskId: task!.id });
      if (t?.state === TaskState.RUNNING) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await agentd.clients(canceller.secret).tasks.cancelTask({ taskId: task!.id });
    const { events } = await agentd.client.tasks.listTaskEvents({ taskId: task!.id, pageSize: 1000 });
    const states = events.filter((e) => e.event.case === "stateChange");
    const stateOf = (e: (typeof events)[number]) => (e.event.case === "stateChange" ? e.event.value.state : undefined);
    expect(states[0] && stateOf(states[0])).toBe(TaskState.QUEUED);
    expect(states[0]?.actor).toBe(creator.key!.id);
    const running = states.find((e) => stateOf(e) === TaskState.RUNNING);
    expect(running?.actor).toBe("");
    const cancelled = states.find((e) => stateOf(e) === TaskState.CANCELED);
    expect(cancelled?.actor).toBe(canceller.key!.id);
    expect(JSON.stringify(events.map((e) => e.actor))).not.toContain(canceller.secret);
  });

  it("records which key answered the agent's question", async () => {
    const admin = keysOf(agentd.key);
    const answerer = await admin.createKey({ scopes: ["tasks:write"], name: "answerer" });
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 0, ask: [{ prompt: "Proceed?", schema: { type: "boolean" } }] }),
    });
    const waited = await agentd.client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 20n } });
    expect(waited.task?.state).toBe(TaskState.INPUT_REQUIRED);
    await agentd.clients(answerer.secret).tasks.provideInput({ taskId: task!.id, value: value(true) });
    const done = await agentd.client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 20n } });
    expect(done.task?.state).toBe(TaskState.SUCCEEDED);
    const { events } = await agentd.client.tasks.listTaskEvents({ taskId: task!.id, pageSize: 1000 });
    // The question is the agent's (no actor); the state change its answer caused is the answerer's.
    const asked = events.findIndex((e) => e.event.case === "inputRequest");
    expect(asked).toBeGreaterThan(0);
    expect(events[asked]?.actor).toBe("");
    const requeued = events
      .slice(asked)
      .find((e) => e.event.case === "stateChange" && e.event.value.state === TaskState.QUEUED);
    expect(requeued?.actor).toBe(answerer.key!.id);
  });
});
