// Extractive summarization as one pure function: split → rank → select. The `summarize` agent
// runs the same phases one by one, reporting progress between them.
import { type Ranking, rankSentences } from "./rank.js";
import { type SelectedSentence, selectSentences } from "./select.js";
import { type Sentence, splitSentences } from "./sentences.js";
import { countWords } from "./tokens.js";

export const DEFAULT_MAX_WORDS = 100;

type SummarySentence = {
  /** Index of the sentence among the text's sentences, from 0. */
  index: number;
  text: string;
  /** Centrality relative to the most central sentence of the text (1), 4 decimals. */
  score: number;
};

export type SummaryOutput = {
  /** The selected sentences in text order, joined by spaces. */
  summary: string;
  sentences: SummarySentence[];
  /** Words in `summary`; at most `max_words`. */
  word_count: number;
  source_sentences: number;
  /** Words in the text's sentences (list markers and heading marks not counted). */
  source_words: number;
};

/** Assembles the agent's output from the three phases' results. */
export function buildSummary(
  sentences: readonly Sentence[],
  ranking: Ranking,
  selected: readonly SelectedSentence[],
): SummaryOutput {
  const top = ranking.scores.reduce((max, s) => Math.max(max, s), 0);
  const relative = (i: number) => (top > 0 ? Math.round((ranking.scores[i]! / top) * 10_000) / 10_000 : 0);
  const summary = selected.map((s) => s.text).join(" ");
  return {
    summary,
    sentences: selected.map((s) => ({ index: s.index, text: s.text, score: relative(s.index) })),
    word_count: countWords(summary),
    source_sentences: sentences.length,
    source_words: sentences.reduce((sum, s) => sum + countWords(s.text), 0),
  };
}

/** Summarizes `text` in at most `maxWords` words by picking its most central sentences. */
export function summarizeText(text: string, maxWords = DEFAULT_MAX_WORDS): SummaryOutput {
  const sentences = splitSentences(text);
  const texts = sentences.map((s) => s.text);
  const ranking = rankSentences(texts);
  const selected = selectSentences(texts, ranking.scores, ranking.vectors, { maxWords });
  return buildSummary(sentences, ranking, selected);
}
