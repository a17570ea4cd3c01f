// Sentence selection: the best-scoring sentences that fit the word budget, without repeating
// one another, in the order they appear in the text.
import { cosine, type SparseVector } from "./rank.js";
import { countWords } from "./tokens.js";

export interface SelectOptions {
  /** Word budget of the summary. */
  maxWords: number;
  /** Two sentences at least this similar (TF-IDF cosine) count as saying the same. Default 0.7. */
  duplicateThreshold?: number;
  /**
   * Sentences with fewer words than this (headings, "Thanks.") are chosen only when no longer
   * sentence fits. Default 4.
   */
  minWords?: number;
}

export interface SelectedSentence {
  /** Index of the sentence in the text. */
  index: number;
  /** The sentence; cut at a word boundary and ended with "…" only when `trimmed`. */
  text: string;
  words: number;
  trimmed: boolean;
}

/** Collapses case, punctuation and spacing, to spot sentences repeated verbatim. */
function normalized(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, " ")
    .trim();
}

/** Cuts `text` to its first `maxWords` words and marks the cut with "…" (not a word of its own). */
export function trimToWords(text: string, maxWords: number): string {
  const words = text.split(/\s+/).filter(Boolean);
  if (words.length <= maxWords) return text;
  const kept = words
    .slice(0, maxWords)
    .join(" ")
    .replace(/[\s,;:.!?\-–—]+$/u, "");
  return `${kept}…`;
}

/**
 * Greedy selection. Sentences are taken best score first (ties: earlier first); one that does
 * not fit the remaining budget is passed over for a shorter one further down, and one too
 * similar to a sentence already taken is skipped. Only when no whole sentence fits at all (the
 * text's sentences are all longer than the budget) is the best sentence cut at a word boundary.
 * The result is in text order.
 */
export function selectSentences(
  texts: readonly string[],
  scores: readonly number[],
  vectors: readonly SparseVector[],
  options: SelectOptions,
): SelectedSentence[] {
  const maxWords = Math.max(1, Math.floor(options.maxWords));
  const threshold = options.duplicateThreshold ?? 0.7;
  const minWords = options.minWords ?? 4;
  if (texts.length === 0) return [];

  const words = texts.map(countWords);
  const order = texts.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  const hasLong = words.some((w) => w >= minWords);

  const pick = (allowShort: boolean): number[] => {
    const chosen: number[] = [];
    const seen = new Set<string>();
    let remaining = maxWords;
    for (const i of order) {
      if (remaining === 0) break;
      if (words[i]! > remaining) continue;
      if (!allowShort && words[i]! < minWords) continue;
      const key = normalized(texts[i]!);
      if (seen.has(key)) continue;
      if (chosen.some((j) => cosine(vectors[i]!, vectors[j]!) >= threshold)) continue;
      chosen.push(i);
      seen.add(key);
      remaining -= words[i]!;
    }
    return chosen;
  };
  let chosen = pick(!hasLong);
  if (chosen.length === 0 && hasLong) chosen = pick(true);

  if (chosen.length === 0) {
    const best = order[0]!;
    const text = trimToWords(texts[best]!, maxWords);
    return [{ index: best, text, words: countWords(text), trimmed: text !== texts[best] }];
  }
  return chosen.sort((a, b) => a - b).map((i) => ({ index: i, text: texts[i]!, words: words[i]!, trimmed: false }));
}
