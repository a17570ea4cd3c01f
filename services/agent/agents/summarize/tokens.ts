// Word-level text processing for scoring: which words of a sentence carry its content.

/**
 * English function words (articles, pronouns, auxiliaries, prepositions, conjunctions, common
 * adverbs). They say little about what a sentence is about, and would otherwise make every
 * pair of sentences look alike. Based on the usual IR stop lists (SMART/NLTK), trimmed to
 * words that are never topical.
 */
export const STOPWORDS: ReadonlySet<string> = new Set(
  (
    "a about above after again against all almost also although always am among an and another any " +
    "anyone anything are aren't around as at be became because become becomes been before being " +
    "below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't " +
    "done down during each either else enough etc even ever every few for from further get gets got " +
    "had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him " +
    "himself his how how's however i i'd i'll i'm i've if in into is isn't it it's its itself just " +
    "least less let's like made make makes many may maybe me might more most mostly much must mustn't " +
    "my myself neither never no nor not now of off often on once one only onto or other others ought " +
    "our ours ourselves out over own per perhaps quite rather really said same say says shall shan't " +
    "she she'd she'll she's should shouldn't since so some something still such than that that's the " +
    "their theirs them themselves then there there's therefore these they they'd they'll they're " +
    "they've thing things this those though through thus to too toward towards under until up upon " +
    "us use used very via was wasn't we we'd we'll we're we've well were weren't what what's whatever " +
    "when when's where where's whether which while who who's whom whose why why's will with within " +
    "without won't would wouldn't yes yet you you'd you'll you're you've your yours yourself yourselves"
  ).split(" "),
);

/**
 * The "S" stemmer (Harman, 1991): folds English plurals onto their singular ("studies" →
 * "study", "emissions" → "emission") and nothing more. It is conservative on purpose: an
 * aggressive stemmer (Porter) merges unrelated words ("university"/"universe"), while plural
 * folding alone recovers most of the matches that matter for sentence similarity. One
 * addition to Harman's rules: words in "-is" keep their "s" ("analysis", "crisis", "basis").
 */
export function stem(word: string): string {
  if (word.length <= 3) return word;
  if (word.endsWith("ies") && !word.endsWith("eies") && !word.endsWith("aies")) return `${word.slice(0, -3)}y`;
  if (word.endsWith("es") && !word.endsWith("aes") && !word.endsWith("ees") && !word.endsWith("oes")) {
    return word.slice(0, -1);
  }
  if (word.endsWith("s") && !word.endsWith("us") && !word.endsWith("ss") && !word.endsWith("is")) {
    return word.slice(0, -1);
  }
  return word;
}

const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}]+)*/gu;

/**
 * The content terms of a text: words lowercased (after Unicode NFKC folding), possessive "'s"
 * dropped, stopwords and one-character tokens removed, plurals folded. Numbers are kept: a
 * year or an amount that recurs links sentences about the same fact.
 */
export function contentTerms(text: string): string[] {
  const terms: string[] = [];
  for (const match of text.normalize("NFKC").toLowerCase().matchAll(WORD)) {
    let word = match[0].replace(/’/g, "'");
    if (STOPWORDS.has(word)) continue;
    if (word.endsWith("'s")) word = word.slice(0, -2);
    if (word.length < 2 || STOPWORDS.has(word)) continue;
    terms.push(stem(word));
  }
  return terms;
}

/** Words as a reader counts them: runs of non-whitespace. Used for every word count. */
export function countWords(text: string): number {
  return text.match(/\S+/g)?.length ?? 0;
}
