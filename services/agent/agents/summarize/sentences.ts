// Sentence segmentation for English prose, notes and lists.
//
// Two levels. First the text is cut into blocks by its layout: blank lines (paragraphs),
// list items (`- `, `* `, `• `, `1.`, `2)`, `a)`), Markdown headings, and short title-like
// lines; a single newline inside a paragraph is just a space (hard-wrapped text). Then each
// block is cut at sentence-final punctuation (. ! ? … with any closing quotes or brackets)
// followed by a space, unless the period belongs to an abbreviation, an initial or a number:
//
// - titles and Latin abbreviations that never end a sentence (Mr., Dr., e.g., i.e., vs.) never
//   cut; "No. 5", "p. 12", "Vol. 3" do not cut before a number;
// - abbreviations that may end a sentence (etc., Inc., U.S., a.m., initials, "et al.") cut only
//   when the next word is capitalized AND is a typical sentence opener ("in the U.S. The next
//   day" cuts; "the U.S. Army" does not);
// - a lowercase next word means the sentence goes on ('"Stop!" he said', "approx. ten"), unless
//   the text as a whole does not capitalize its sentences, where that orthographic cue is void;
// - "3.14", "example.com", "v1.2" never cut: there is no space after the period.
//
// This is the classic rule-based approach (as in Punkt's orthographic heuristics, with a fixed
// abbreviation list instead of one learned from a corpus): no training data, deterministic,
// linear in the length of the text.
import { STOPWORDS } from "./tokens.js";

export interface Sentence {
  /** Position in the list of sentences, from 0. */
  index: number;
  /** The sentence with list markers removed and runs of whitespace (newlines) made one space. */
  text: string;
  /** Offsets of the sentence's span in the original text: `original.slice(start, end)`. */
  start: number;
  end: number;
}

/** Never end a sentence: titles before names, Latin abbreviations, units of reference. */
const NEVER_FINAL = new Set([
  "mr",
  "mrs",
  "ms",
  "mx",
  "dr",
  "prof",
  "st",
  "gen",
  "col",
  "lt",
  "capt",
  "sgt",
  "cmdr",
  "adm",
  "rev",
  "hon",
  "gov",
  "sen",
  "rep",
  "pres",
  "supt",
  "mt",
  "ft",
  "e.g",
  "i.e",
  "cf",
  "vs",
  "viz",
  "approx",
  "ca",
  "dept",
  "fig",
  "figs",
  "eq",
  "eqs",
  "ref",
  "refs",
  "resp",
  "incl",
  "esp",
]);

/** Do not end a sentence when a number follows ("No. 5", "pp. 10-12", "Art. 3"). */
const BEFORE_NUMBER = new Set(["no", "nos", "vol", "vols", "p", "pp", "art", "sec", "ch", "chap", "op", "par", "tab"]);

/** May end a sentence; they end one only before a capitalized sentence opener. */
const MAYBE_FINAL = new Set([
  "etc",
  "inc",
  "ltd",
  "co",
  "corp",
  "jr",
  "sr",
  "al",
  "bros",
  "llc",
  "plc",
  "esq",
  "ph.d",
  "jan",
  "feb",
  "mar",
  "apr",
  "jun",
  "jul",
  "aug",
  "sep",
  "sept",
  "oct",
  "nov",
  "dec",
  "mon",
  "tue",
  "tues",
  "wed",
  "thu",
  "thur",
  "thurs",
  "fri",
  "sat",
  "sun",
  "min",
  "max",
  "est",
  "univ",
  "assn",
  "intl",
]);

/** Words that typically open a sentence, beyond the stopwords (which mostly do). */
const OPENERS = new Set([
  ...STOPWORDS,
  "meanwhile",
  "today",
  "yesterday",
  "tomorrow",
  "later",
  "finally",
  "first",
  "second",
  "third",
  "next",
  "last",
  "overall",
  "instead",
  "indeed",
  "still",
  "now",
  "many",
  "several",
  "most",
  "some",
  "according",
  "despite",
  "unlike",
  "although",
  "though",
  "since",
  "after",
  "before",
  "during",
]);

const DOTTED_ACRONYM = /^(?:\p{L}\.)+\p{L}$/u; // U.S, e.g, a.m, U.K
const SINGLE_LETTER = /^\p{L}$/u; // initials: "J. R. R. Tolkien"
const OPENING_MARKS = /^["'“‘«([¿¡*_]+/u;
const TRAILING_MARKS = /[^\p{L}\p{N}']+$/u;
const HAS_CONTENT = /[\p{L}\p{N}]/u;

const BULLET = /^[ \t]*(?:[-*+•‣◦▪·–—]|\(?\d{1,3}[.)]|\(?[a-z][.)]|\([A-Za-z]\))[ \t]+(?=\S)/u;
const MD_HEADING = /^[ \t]{0,3}#{1,6}[ \t]+(?=\S)/;

/**
 * Whether the text capitalizes its sentences: after ". ", "! ", "? ", are capitals at least as
 * common as lowercase letters? In all-lowercase text (chat, transcripts) a lowercase word after
 * a period does not mean the sentence goes on.
 */
function isCased(text: string): boolean {
  let upper = 0;
  let lower = 0;
  for (const m of text.matchAll(/[.!?]["'”’)\]]*\s+["'“‘([]*(\p{L})/gu)) {
    const letter = m[1]!;
    if (letter !== letter.toLowerCase()) upper++;
    else if (letter !== letter.toUpperCase()) lower++;
  }
  return upper >= lower;
}

interface Span {
  start: number;
  end: number;
}

interface Line {
  start: number; // offset of the first character
  end: number; // offset after the last character, newline excluded
  text: string;
}

function linesOf(text: string): Line[] {
  const lines: Line[] = [];
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    const lineEnd = end > start && text[end - 1] === "\r" ? end - 1 : end;
    lines.push({ start, end: lineEnd, text: text.slice(start, lineEnd) });
    start = end + 1;
  }
  return lines;
}

function wordsOf(line: string): string[] {
  return line.trim().split(/\s+/).filter(Boolean);
}

/** A short line without final punctuation, not ending in a function word, before a capital. */
function isTitleLike(line: string, next: string | undefined): boolean {
  const trimmed = line.trim();
  const words = wordsOf(trimmed);
  if (words.length === 0 || words.length > 8 || trimmed.length >= 60) return false;
  if (/[.,;:!?…\-–—]$/.test(trimmed)) return false;
  const lastWord = words[words.length - 1]!.toLowerCase().replace(TRAILING_MARKS, "");
  if (STOPWORDS.has(lastWord)) return false;
  const following = next?.trim().replace(OPENING_MARKS, "") ?? "";
  return /^[\p{Lu}\p{N}]/u.test(following);
}

/** Cuts the text into layout blocks: paragraphs, list items, headings. */
function blocksOf(text: string): Span[] {
  const blocks: Span[] = [];
  const lines = linesOf(text);
  let current: Span | null = null;
  let previous: "blank" | "bullet" | "heading" | "text" = "blank";
  let currentLines = 0;
  const close = () => {
    if (current) blocks.push(current);
    current = null;
    currentLines = 0;
  };
  lines.forEach((line, i) => {
    const next = lines[i + 1]?.text;
    if (line.text.trim() === "") {
      close();
      previous = "blank";
      return;
    }
    const heading = MD_HEADING.exec(line.text);
    if (heading) {
      close();
      blocks.push({ start: line.start + heading[0].length, end: line.end });
      previous = "heading";
      return;
    }
    const bullet = BULLET.exec(line.text);
    if (bullet) {
      close();
      current = { start: line.start + bullet[0].length, end: line.end };
      currentLines = 1;
      previous = "bullet";
      return;
    }
    const continues =
      current !== null &&
      (previous === "text" ||
        (previous === "bullet" && (/^[ \t]/.test(line.text) || /^\p{Ll}/u.test(line.text.trim()))));
    if (continues && current) {
      (current as Span).end = line.end;
      currentLines++;
    } else {
      close();
      current = { start: line.start, end: line.end };
      currentLines = 1;
    }
    // A one-line block that looks like a title ends here, before the line that follows it.
    if (currentLines === 1 && isTitleLike(line.text, next)) {
      close();
      previous = "heading";
      return;
    }
    previous = previous === "bullet" && continues ? "bullet" : "text";
  });
  close();
  return blocks;
}

/** Whether the terminal punctuation matched by `m` (in `block`) ends a sentence. */
function endsSentence(block: string, m: RegExpExecArray, pieceStart: number, cased: boolean): boolean {
  const punct = m[1]!;
  const after = /^\s+(\S+)/.exec(block.slice(m.index + m[0].length));
  if (!after) return true; // end of the block
  const next = after[1]!.replace(OPENING_MARKS, "");
  const nextIsLower = /^\p{Ll}/u.test(next);
  const nextIsUpper = /^\p{Lu}/u.test(next);

  if (punct !== ".") {
    // "?", "!", "?!", "…", "...": a lowercase continuation means a quotation or a pause.
    if (punct.includes("…") || /^\.{2,}$/.test(punct)) return !nextIsLower;
    return !(nextIsLower && cased);
  }

  const before = /(\S*)$/.exec(block.slice(pieceStart, m.index))![1]!;
  const word = before.replace(OPENING_MARKS, "").toLowerCase();
  if (word === "") return true;
  if (NEVER_FINAL.has(word)) return false;
  if (BEFORE_NUMBER.has(word) && /^\d/.test(next)) return false;
  if (MAYBE_FINAL.has(word) || DOTTED_ACRONYM.test(word) || SINGLE_LETTER.test(word)) {
    return nextIsUpper && OPENERS.has(next.toLowerCase().replace(TRAILING_MARKS, ""));
  }
  return !(nextIsLower && cased);
}

// Sentence-final punctuation, then closing quotes/brackets, then a space or the end.
const TERMINAL = /([.!?…]+)(["'”’)\]»]*)(?=\s|$)/gu;

/** Splits `text` into sentences (see the rules at the top of this file). */
export function splitSentences(text: string): Sentence[] {
  const cased = isCased(text);
  const sentences: Sentence[] = [];
  const push = (start: number, end: number) => {
    const raw = text.slice(start, end);
    const lead = raw.length - raw.trimStart().length;
    const trimmed = raw.trim();
    if (!HAS_CONTENT.test(trimmed)) return;
    const s = start + lead;
    sentences.push({ index: sentences.length, text: trimmed.replace(/\s+/g, " "), start: s, end: s + trimmed.length });
  };
  for (const block of blocksOf(text)) {
    const body = text.slice(block.start, block.end);
    let pieceStart = 0;
    TERMINAL.lastIndex = 0;
    for (let m = TERMINAL.exec(body); m !== null; m = TERMINAL.exec(body)) {
      const pieceEnd = m.index + m[0].length;
      if (endsSentence(body, m, pieceStart, cased)) {
        push(block.start + pieceStart, block.start + pieceEnd);
        pieceStart = pieceEnd;
      }
    }
    push(block.start + pieceStart, block.end);
  }
  return sentences;
}
