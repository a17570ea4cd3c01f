// Built-in agent `analyze-document`: the long multi-step job of the asynchronous patterns.
// Splits a text (plain or Markdown) into sections; per section: an extractive summary (the
// summarizer), keywords, named entities, sentiment and readability; then document-wide
// keywords (TF-IDF over sections), entities, sentiment, readability and structure, a
// structured result and a Markdown report artifact (`report.md`).
//
// It checkpoints after every section ({done: [...]}), and reports a section's progress only
// after its checkpoint: a runner killed mid-document leaves the finished sections in the
// checkpoint, and the next attempt (on any runner) starts at the next section without redoing
// or re-emitting the finished ones.
import { sleep, yieldToEventLoop } from "./abortable.js";
import type { AgentDefinition, Json } from "./agent.js";
import { type Keyword, tfidfKeywords } from "./analyze/keywords.js";
import type { Entities, Sentiment } from "./analyze/language.js";
import { type Readability, readability } from "./analyze/readability.js";
import { renderReport } from "./analyze/report.js";
import { splitSections, structureStats } from "./analyze/sections.js";
import { splitSentences } from "./summarize/sentences.js";
import { summarizeText } from "./summarize/summarize-text.js";

export interface AnalyzeInput {
  text: string;
  title?: string;
  summary_words?: number;
  pace_ms?: number;
}

interface SectionAnalysis {
  index: number;
  heading: string;
  level: number;
  summary: string;
  keywords: string[];
  entities: Entities;
  sentiment: Sentiment;
  readability: Readability;
}

export interface AnalyzeOutput {
  title: string;
  sections: SectionAnalysis[];
  keywords: Keyword[];
  entities: Entities;
  sentiment: Sentiment;
  readability: Readability;
  structure: ReturnType<typeof structureStats> & {
    sections: number;
    sentences: number;
    words: number;
    avg_sentence_words: number;
  };
}

interface State {
  done: SectionAnalysis[];
}

const entitiesSchema: Json = {
  type: "object",
  properties: {
    people: { type: "array", items: { type: "string" } },
    places: { type: "array", items: { type: "string" } },
    organizations: { type: "array", items: { type: "string" } },
    dates: { type: "array", items: { type: "string" } },
  },
  required: ["people", "places", "organizations", "dates"],
};
const sentimentSchema: Json = {
  type: "object",
  properties: { score: { type: "number" }, label: { type: "string", enum: ["positive", "negative", "neutral"] } },
  required: ["score", "label"],
};
const readabilitySchema: Json = {
  type: "object",
  properties: {
    flesch_reading_ease: { type: "number" },
    words: { type: "integer" },
    sentences: { type: "integer" },
    syllables: { type: "integer" },
    level: { type: "string" },
  },
  required: ["flesch_reading_ease", "words", "sentences", "syllables", "level"],
};

const inputSchema: Json = {
  type: "object",
  properties: {
    text: {
      type: "string",
      minLength: 1,
      maxLength: 2_000_000,
      // Only whitespace would make an empty report: refused as INVALID_ARGUMENT instead.
      pattern: "\\S",
      description: "Plain text or Markdown (not only whitespace).",
    },
    title: { type: "string", maxLength: 500 },
    summary_words: {
      type: "integer",
      minimum: 10,
      maximum: 500,
      default: 40,
      description: "Word budget of each section summary.",
    },
    pace_ms: {
      type: "integer",
      minimum: 0,
      maximum: 10_000,
      default: 0,
      description: "Pause after each section (for demos and failover tests: makes the steps watchable).",
    },
  },
  required: ["text"],
  additionalProperties: false,
};

const outputSchema: Json = {
  type: "object",
  properties: {
    title: { type: "string" },
    sections: {
      type: "array",
      items: {
        type: "object",
        properties: {
          index: { type: "integer" },
          heading: { type: "string" },
          level: { type: "integer" },
          summary: { type: "string" },
          keywords: { type: "array", items: { type: "string" } },
          entities: entitiesSchema,
          sentiment: sentimentSchema,
          readability: readabilitySchema,
        },
        required: ["index", "heading", "level", "summary", "keywords", "entities", "sentiment", "readability"],
      },
    },
    keywords: {
      type: "array",
      items: {
        type: "object",
        properties: { term: { type: "string" }, score: { type: "number" }, count: { type: "integer" } },
        required: ["term", "score", "count"],
      },
    },
    entities: entitiesSchema,
    sentiment: sentimentSchema,
    readability: readabilitySchema,
    structure: { type: "object" },
  },
  required: ["title", "sections", "keywords", "entities", "sentiment", "readability", "structure"],
  additionalProperties: false,
};

export const analyzeDocumentAgent: AgentDefinition<AnalyzeInput, AnalyzeOutput> = {
  name: "analyze-document",
  version: "1.0.0",
  description:
    "Analyzes a document section by section: summaries, keywords (TF-IDF), named entities, sentiment and Flesch " +
    "readability, with document-wide results and a Markdown report. Resumes at the next section after a crash.",
  inputSchema,
  outputSchema,
  capabilities: ["progress", "artifacts", "checkpoints"],
  async run(input, ctx) {
    const { signal } = ctx;
    // Loaded on first use: the NLP libraries and their lexicons would slow every start-up.
    const { entitiesOf, mergeEntities, sentimentOf } = await import("./analyze/language.js");
    const sections = splitSections(input.text);
    const total = sections.length;
    const steps = total + 1;
    const keywordSets = tfidfKeywords(
      sections.map((s) => s.text),
      8,
    );
    const state: State = {
      done: [...(((ctx.savedState as unknown as State | undefined)?.done ?? []) as SectionAnalysis[])],
    };
    if (state.done.length > 0) await ctx.log("info", `resuming at section ${state.done.length + 1} of ${total}`);

    for (let i = state.done.length; i < total; i++) {
      signal.throwIfAborted();
      const section = sections[i]!;
      const sentences = splitSentences(section.text).length;
      state.done.push({
        index: i,
        heading: section.heading,
        level: section.level,
        summary: summarizeText(section.text, input.summary_words ?? 40).summary,
        keywords: keywordSets.perSection[i]!.map((k) => k.term),
        entities: entitiesOf(section.text),
        sentiment: sentimentOf(section.text),
        readability: readability(section.text, sentences),
      });
      await ctx.checkpoint(state as unknown as Json);
      await ctx.progress({
        step: i + 1,
        totalSteps: steps,
        percent: Math.round(((i + 1) / steps) * 100),
        message: `section ${i + 1}/${total}: ${section.heading}`,
      });
      if (input.pace_ms) await sleep(input.pace_ms, signal);
      else await yieldToEventLoop();
    }

    signal.throwIfAborted();
    const sentenceCount = splitSentences(input.text).length;
    const overall = readability(input.text, sentenceCount);
    const structure = {
      ...structureStats(input.text),
      sections: total,
      sentences: sentenceCount,
      words: overall.words,
      avg_sentence_words: Math.round((overall.words / Math.max(1, sentenceCount)) * 10) / 10,
    };
    const output: AnalyzeOutput = {
      title: input.title ?? sections.find((s) => s.level === 1)?.heading ?? "Untitled document",
      sections: state.done,
      keywords: keywordSets.overall,
      entities: mergeEntities(state.done.map((s) => s.entities)),
      sentiment: sentimentOf(input.text),
      readability: overall,
      structure,
    };
    await ctx.artifact({ name: "report.md", mimeType: "text/markdown", text: renderReport(output) });
    await ctx.progress({ step: steps, totalSteps: steps, percent: 100, message: "report written" });
    return output;
  },
};
