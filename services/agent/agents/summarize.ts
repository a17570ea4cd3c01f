// Built-in agent `summarize`: extractive summary of a text — its most central sentences, in
// their original order, within a word budget. The algorithm lives in ./summarize/ (pure and
// unit-tested); this wrapper reports progress, streams the chosen sentences and honours
// cancellation between phases.
import { yieldToEventLoop } from "./abortable.js";
import type { AgentContext, AgentDefinition, Json } from "./agent.js";
import { rankSentences } from "./summarize/rank.js";
import { selectSentences } from "./summarize/select.js";
import { splitSentences } from "./summarize/sentences.js";
import { buildSummary, DEFAULT_MAX_WORDS, type SummaryOutput } from "./summarize/summarize-text.js";

export interface SummarizeInput {
  text: string;
  max_words?: number;
}

const inputSchema: Json = {
  type: "object",
  properties: {
    text: { type: "string", minLength: 1, maxLength: 200_000, description: "The text to summarize." },
    max_words: {
      type: "integer",
      minimum: 10,
      maximum: 2000,
      default: DEFAULT_MAX_WORDS,
      description: "Word budget of the summary.",
    },
  },
  required: ["text"],
  additionalProperties: false,
};

const outputSchema: Json = {
  type: "object",
  properties: {
    summary: { type: "string", description: "The selected sentences in text order, joined by spaces." },
    sentences: {
      type: "array",
      items: {
        type: "object",
        properties: {
          index: { type: "integer", minimum: 0, description: "Position of the sentence in the text, from 0." },
          text: { type: "string" },
          score: { type: "number", minimum: 0, maximum: 1, description: "Centrality relative to the top sentence." },
        },
        required: ["index", "text", "score"],
        additionalProperties: false,
      },
    },
    word_count: { type: "integer", minimum: 0 },
    source_sentences: { type: "integer", minimum: 0 },
    source_words: { type: "integer", minimum: 0 },
  },
  required: ["summary", "sentences", "word_count", "source_sentences", "source_words"],
  additionalProperties: false,
};

async function run(input: SummarizeInput, ctx: AgentContext): Promise<SummaryOutput> {
  const maxWords = input.max_words ?? DEFAULT_MAX_WORDS;
  const { signal } = ctx;
  signal.throwIfAborted();

  const sentences = splitSentences(input.text);
  const texts = sentences.map((s) => s.text);
  await ctx.progress({ step: 1, totalSteps: 3, percent: 10, message: `split into ${sentences.length} sentences` });
  await yieldToEventLoop();
  signal.throwIfAborted();

  const ranking = rankSentences(texts);
  await ctx.progress({ step: 2, totalSteps: 3, percent: 80, message: `scored ${sentences.length} sentences` });
  await yieldToEventLoop();
  signal.throwIfAborted();

  const selected = selectSentences(texts, ranking.scores, ranking.vectors, { maxWords });
  const output = buildSummary(sentences, ranking, selected);
  await ctx.progress({
    step: 3,
    totalSteps: 3,
    percent: 100,
    message: `selected ${selected.length} sentences, ${output.word_count} words`,
  });
  signal.throwIfAborted();
  for (const sentence of selected) ctx.delta(`${sentence.text} `);
  return output;
}

export const summarizeAgent: AgentDefinition<SummarizeInput, SummaryOutput> = {
  name: "summarize",
  version: "1.0.0",
  description:
    "Summarizes a text by extracting its most central sentences (LexRank over TF-IDF similarity), " +
    "in their original order, within a word budget.",
  inputSchema,
  outputSchema,
  capabilities: ["streaming", "progress"],
  run,
};
