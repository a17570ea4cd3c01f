// An agent that asks a language model one question on an OpenAI-compatible server and streams
// the answer. It uses the SDK context for everything agentd should know about: the call is a
// recorded tool call, the text goes out as deltas, and ctx.signal cancels the HTTP request.
import { AgentFailure, defineAgent } from "agentd-server";

interface In {
  question: string;
}
interface Out {
  answer: string;
}

export default defineAgent<In, Out>({
  name: "ask-llm",
  version: "1.0.0",
  description: "Answers a question with a language model (LLM_BASE_URL, LLM_MODEL, optional LLM_API_KEY).",
  inputSchema: {
    type: "object",
    properties: { question: { type: "string", minLength: 1, maxLength: 10000 } },
    required: ["question"],
    additionalProperties: false,
  },
  outputSchema: { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] },
  capabilities: ["streaming", "tools"],
  async run(input, ctx) {
    const baseUrl = process.env.LLM_BASE_URL;
    const model = process.env.LLM_MODEL;
    if (!baseUrl || !model) throw new AgentFailure("NOT_CONFIGURED", "set LLM_BASE_URL and LLM_MODEL");
    const answer = await ctx.tool("llm", { model, question: input.question }, async () => {
      const res = await fetch(`${baseUrl}/chat/completions`, {
        method: "POST",
        signal: ctx.signal,
        headers: {
          "content-type": "application/json",
          ...(process.env.LLM_API_KEY ? { authorization: `Bearer ${process.env.LLM_API_KEY}` } : {}),
        },
        body: JSON.stringify({ model, messages: [{ role: "user", content: input.question }] }),
      });
      if (res.status === 429 || res.status >= 500) {
        throw new AgentFailure("LLM_UNAVAILABLE", `the LLM server answered ${res.status}`, { retryable: true });
      }
      if (!res.ok) throw new AgentFailure("LLM_REFUSED", `the LLM server answered ${res.status}`);
      const body = (await res.json()) as { choices?: { message?: { content?: string } }[] };
      return body.choices?.[0]?.message?.content ?? "";
    });
    ctx.delta(answer);
    return { answer };
  },
});
