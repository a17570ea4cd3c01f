// Flesch reading ease (Flesch 1948): 206.835 − 1.015 × words/sentences − 84.6 × syllables/words.
// Syllables are estimated by counting vowel groups with the usual English corrections. Pure.

const WORD = /[A-Za-z]+(?:'[A-Za-z]+)?/g;

function syllables(word: string): number {
  const w = word.toLowerCase().replace(/'.*$/, "");
  if (w.length <= 3) return 1;
  const trimmed = w.replace(/(?:[^laeiouy]es|[^laeiouy]ed|[^laeiouy]e)$/, "").replace(/^y/, "");
  const groups = trimmed.match(/[aeiouy]{1,2}/g);
  return Math.max(1, groups?.length ?? 1);
}

export interface Readability {
  flesch_reading_ease: number;
  words: number;
  sentences: number;
  syllables: number;
  /** A plain-language band of the score, after Flesch's table. */
  level: string;
}

function band(score: number): string {
  if (score >= 90) return "very easy";
  if (score >= 80) return "easy";
  if (score >= 70) return "fairly easy";
  if (score >= 60) return "plain English";
  if (score >= 50) return "fairly difficult";
  if (score >= 30) return "difficult";
  return "very difficult";
}

export function readability(text: string, sentenceCount: number): Readability {
  const words = text.match(WORD) ?? [];
  const syl = words.reduce((n, w) => n + syllables(w), 0);
  const sentences = Math.max(1, sentenceCount);
  const score = words.length === 0 ? 0 : 206.835 - 1.015 * (words.length / sentences) - 84.6 * (syl / words.length);
  const rounded = Math.round(score * 10) / 10;
  return {
    flesch_reading_ease: rounded,
    words: words.length,
    sentences: sentenceCount,
    syllables: syl,
    level: band(rounded),
  };
}
