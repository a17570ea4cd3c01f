// Keywords by TF-IDF over the document's sections: a term scores high when it is frequent in
// the document but concentrated in few sections. Terms are lower-cased words without
// stopwords; the most common surface form is reported. Pure.
import { STOPWORDS } from "../summarize/tokens.js";

export interface Keyword {
  term: string;
  score: number;
  count: number;
}

function terms(text: string): string[] {
  return (text.toLowerCase().match(/[a-z][a-z'-]*[a-z]|[a-z]/g) ?? []).filter((t) => t.length > 2 && !STOPWORDS.has(t));
}

/** Top `limit` keywords of each section and of the whole document. */
export function tfidfKeywords(sections: string[], limit = 10): { overall: Keyword[]; perSection: Keyword[][] } {
  const docs = sections.map(terms);
  const df = new Map<string, number>();
  for (const doc of docs) for (const t of new Set(doc)) df.set(t, (df.get(t) ?? 0) + 1);
  const n = docs.length;
  const idf = (t: string) => Math.log((1 + n) / (1 + (df.get(t) ?? 0))) + 1;
  const top = (counts: Map<string, number>, total: number): Keyword[] =>
    [...counts.entries()]
      .map(([term, count]) => ({
        term,
        count,
        score: Math.round((count / Math.max(1, total)) * idf(term) * 10_000) / 10_000,
      }))
      .sort((a, b) => b.score - a.score || b.count - a.count || (a.term < b.term ? -1 : 1))
      .slice(0, limit);
  const countsOf = (doc: string[]) => {
    const c = new Map<string, number>();
    for (const t of doc) c.set(t, (c.get(t) ?? 0) + 1);
    return c;
  };
  const all = docs.flat();
  // Overall: term frequency in the whole document, weighted by idf, ignoring one-off terms.
  const overallCounts = new Map([...countsOf(all)].filter(([, c]) => c > 1 || all.length < 50));
  return { overall: top(overallCounts, all.length), perSection: docs.map((d) => top(countsOf(d), d.length)) };
}
