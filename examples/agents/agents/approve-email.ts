// An agent that drafts an e-mail and asks a human to approve it before "sending". While it
// waits, no process waits: the task sits in INPUT_REQUIRED until someone answers (ProvideInput,
// Converse, the CLI), then runs again from the top with its checkpoint and the answer.
import { defineAgent } from "agentd-server";

interface In {
  to: string;
  topic: string;
}
interface Out {
  sent: boolean;
  draft: string;
  reason?: string;
}
interface State {
  draft: string;
}

export default defineAgent<In, Out>({
  name: "approve-email",
  version: "1.0.0",
  description: "Drafts an e-mail and sends it only after a human approves it.",
  inputSchema: {
    type: "object",
    properties: { to: { type: "string", format: "email" }, topic: { type: "string", minLength: 1 } },
    required: ["to", "topic"],
    additionalProperties: false,
  },
  outputSchema: {
    type: "object",
    properties: { sent: { type: "boolean" }, draft: { type: "string" }, reason: { type: "string" } },
    required: ["sent", "draft"],
  },
  capabilities: ["input", "checkpoints"],
  async run(input, ctx) {
    // Resumed after the answer: the draft comes from the checkpoint, not from redoing the work.
    const saved = ctx.savedState as unknown as State | undefined;
    const draft =
      saved?.draft ?? `To: ${input.to}\nSubject: ${input.topic}\n\nHello, a short note about ${input.topic}.`;
    if (!saved) await ctx.checkpoint({ draft });
    const answer = (await ctx.requestInput({
      prompt: `Send this e-mail?\n\n${draft}`,
      schema: {
        type: "object",
        properties: { approved: { type: "boolean" }, reason: { type: "string" } },
        required: ["approved"],
        additionalProperties: false,
      },
      expiresInMs: 24 * 3600 * 1000,
    })) as { approved: boolean; reason?: string };
    if (!answer.approved) return { sent: false, draft, ...(answer.reason ? { reason: answer.reason } : {}) };
    await ctx.log("info", `sent to ${input.to}`);
    return { sent: true, draft };
  },
});
