// Bench agent `bench-clock`: streams `tokens` deltas at `rate` per second, each carrying
// the wall-clock time (epoch ms, µs precision) at which `ctx.delta()` was called, so a client
// on the same host measures delta() → receipt latency. Loaded with AGENTD_AGENTS.
import { defineAgent } from "../../services/agent/agents/agent.js";

const wallNow = () => performance.timeOrigin + performance.now();

export default defineAgent<{ tokens: number; rate: number; start_delay_ms?: number }, { tokens: number }>({
  name: "bench-clock",
  version: "1.0.0",
  description: "Streams tokens that carry their emit time, for latency benchmarks.",
  inputSchema: {
    type: "object",
    properties: {
      tokens: { type: "integer", minimum: 1 },
      rate: { type: "number", exclusiveMinimum: 0 },
      start_delay_ms: { type: "integer", minimum: 0 },
    },
    required: ["tokens", "rate"],
    additionalProperties: false,
  },
  outputSchema: { type: "object", properties: { tokens: { type: "integer" } }, required: ["tokens"] },
  capabilities: ["streaming"],
  async run(input, ctx) {
    const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
    await wait(input.start_delay_ms ?? 0);
    const interval = 1000 / input.rate;
    const start = performance.now();
    for (let i = 0; i < input.tokens; i++) {
      ctx.signal.throwIfAborted();
      // Absolute targets: the rate does not drift with timer lateness.
      await wait(start + i * interval - performance.now());
      ctx.delta(`${wallNow().toFixed(3)} `);
    }
    return { tokens: input.tokens };
  },
});
