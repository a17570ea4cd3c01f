import assert from "node:assert/strict";
import { test } from "node:test";
import { isInputRequired } from "agentd-server";
import approveEmail from "../agents/approve-email.ts";
import { testContext } from "./context.ts";

const input = { to: "ada@example.org", topic: "the meeting" };

test("checkpoints the draft, then pauses for approval", async () => {
  const { ctx, seen } = testContext();
  await assert.rejects(approveEmail.run(input, ctx), (err: unknown) => isInputRequired(err));
  assert.equal(seen.checkpoints.length, 1);
  assert.match(seen.questions[0] ?? "", /Send this e-mail\?/);
});

test("resumed with an approval, it sends the checkpointed draft without drafting again", async () => {
  const { ctx, seen } = testContext({ savedState: { draft: "the saved draft" }, answer: { approved: true } });
  assert.deepEqual(await approveEmail.run(input, ctx), { sent: true, draft: "the saved draft" });
  assert.equal(seen.checkpoints.length, 0);
});

test("resumed with a refusal, it does not send", async () => {
  const { ctx } = testContext({ savedState: { draft: "d" }, answer: { approved: false, reason: "wrong topic" } });
  assert.deepEqual(await approveEmail.run(input, ctx), { sent: false, draft: "d", reason: "wrong topic" });
});
