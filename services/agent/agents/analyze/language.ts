// Named entities and sentiment, from npm libraries that ship their own data (no download at run
// time): compromise (rule-based English tagger: people, places, organizations, dates) and
// wink-sentiment (AFINN-165 lexicon with negation handling).
import nlp from "compromise";
import winkSentiment from "wink-sentiment";

export interface Entities {
  people: string[];
  places: string[];
  organizations: string[];
  dates: string[];
}

export interface Sentiment {
  /** AFINN score normalised per word, about −5..5; > 0.05 positive, < −0.05 negative. */
  score: number;
  label: "positive" | "negative" | "neutral";
}

const MONTH_OR_DIGIT =
  /\d|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(mon|tues|wednes|thurs|fri|satur|sun)day\b/i;

function clean(list: string[]): string[] {
  const seen = new Map<string, string>();
  for (const raw of list) {
    const text = raw
      .replace(/^[\s"'“‘(]+|[\s"'”’),.;:!?]+$/g, "")
      .replace(/'s$/, "")
      .trim();
    if (text.length < 2) continue;
    const key = text.toLowerCase();
    if (!seen.has(key)) seen.set(key, text);
  }
  return [...seen.values()];
}

// compromise builds its lexicon on first use; do it once when this module is loaded.
nlp("Warm up on Monday in Paris.").people();

export function entitiesOf(text: string): Entities {
  const doc = nlp(text);
  return {
    people: clean(doc.people().out("array") as string[]),
    places: clean(doc.places().out("array") as string[]),
    organizations: clean(doc.organizations().out("array") as string[]),
    dates: clean((doc.match("#Date+").out("array") as string[]).filter((d) => MONTH_OR_DIGIT.test(d))),
  };
}

export function sentimentOf(text: string): Sentiment {
  const result = winkSentiment(text) as { normalizedScore: number };
  const score = Math.round(result.normalizedScore * 1000) / 1000;
  return { score, label: score > 0.05 ? "positive" : score < -0.05 ? "negative" : "neutral" };
}

/** Merges per-section entities, keeping first-seen order and dropping duplicates. */
export function mergeEntities(all: Entities[]): Entities {
  return {
    people: clean(all.flatMap((e) => e.people)),
    places: clean(all.flatMap((e) => e.places)),
    organizations: clean(all.flatMap((e) => e.organizations)),
    dates: clean(all.flatMap((e) => e.dates)),
  };
}
