// Sentence scoring: LexRank (Erkan & Radev, 2004) — PageRank over a graph whose nodes are the
// sentences and whose edges are the TF-IDF cosine similarities between them.
//
// Why centrality rather than scoring each sentence on its own (e.g. the sum of its TF-IDF
// weights): a summary should state what the text is mostly about. A sentence is central when it
// shares vocabulary with many other sentences that are themselves central, so the score takes the
// whole text into account. Per-sentence TF-IDF sums instead reward sentences full of rare words
// (a quotation, a list of names), and grow with length. Cosine similarity is already normalised
// for length; the one length correction kept is for very short sentences, whose few words can
// make them look similar to everything ("Climate matters."). No position prior is applied, so the
// method works the same on news, reports and notes; ties go to the earlier sentence.
import { contentTerms } from "./tokens.js";

/** A unit-length TF-IDF vector: term ids ascending, with their weights. */
export interface SparseVector {
  terms: Int32Array;
  weights: Float64Array;
}

export interface RankOptions {
  /** PageRank damping factor (probability of following an edge). Default 0.85. */
  damping?: number;
  /**
   * Stop when the scores (which sum to 1) change by less than this in L1 norm, default 1e-6 —
   * far below any difference that changes the order of sentences…
   */
  tolerance?: number;
  /** …or after this many iterations, default 200. */
  maxIterations?: number;
  /**
   * Bound on the work of building the graph (sum over terms of df²). A text whose most common
   * words appear in thousands of sentences would otherwise cost quadratic time; past the budget,
   * the most widespread terms — the least informative ones — are left out of the graph. Ordinary
   * texts stay far below it. Default 5,000,000.
   */
  pairBudget?: number;
  /** Sentences with fewer content words than this have their score scaled down. Default 4. */
  minContentWords?: number;
}

export interface Ranking {
  /** One score per sentence; they sum to about 1 before the short-sentence correction. */
  scores: number[];
  /** Each sentence's TF-IDF vector (for redundancy checks). */
  vectors: SparseVector[];
  /** Content words per sentence. */
  contentWords: number[];
}

/** Cosine similarity of two unit vectors. */
export function cosine(a: SparseVector, b: SparseVector): number {
  let i = 0;
  let j = 0;
  let dot = 0;
  while (i < a.terms.length && j < b.terms.length) {
    const ta = a.terms[i]!;
    const tb = b.terms[j]!;
    if (ta === tb) dot += a.weights[i++]! * b.weights[j++]!;
    else if (ta < tb) i++;
    else j++;
  }
  return dot;
}

/** TF-IDF vectors, each sentence being a "document": tf = 1 + ln(count), idf = 1 + ln((N+1)/(df+1)). */
function vectorize(sentences: readonly string[]): { vectors: SparseVector[]; contentWords: number[]; df: number[] } {
  const vocabulary = new Map<string, number>();
  const counts: Map<number, number>[] = [];
  const contentWords: number[] = [];
  const df: number[] = [];
  for (const sentence of sentences) {
    const tf = new Map<number, number>();
    const terms = contentTerms(sentence);
    for (const term of terms) {
      let id = vocabulary.get(term);
      if (id === undefined) {
        id = vocabulary.size;
        vocabulary.set(term, id);
        df.push(0);
      }
      tf.set(id, (tf.get(id) ?? 0) + 1);
    }
    for (const id of tf.keys()) df[id]!++;
    counts.push(tf);
    contentWords.push(terms.length);
  }
  const n = sentences.length;
  const vectors = counts.map((tf) => {
    const ids = [...tf.keys()].sort((x, y) => x - y);
    const weights = new Float64Array(ids.length);
    let norm = 0;
    ids.forEach((id, k) => {
      const w = (1 + Math.log(tf.get(id)!)) * (1 + Math.log((n + 1) / (df[id]! + 1)));
      weights[k] = w;
      norm += w * w;
    });
    norm = Math.sqrt(norm);
    if (norm > 0) for (let k = 0; k < weights.length; k++) weights[k]! /= norm;
    return { terms: Int32Array.from(ids), weights };
  });
  return { vectors, contentWords, df };
}

/** Scores sentences by LexRank centrality (see the top of this file). Deterministic. */
export function rankSentences(sentences: readonly string[], options: RankOptions = {}): Ranking {
  const damping = options.damping ?? 0.85;
  const tolerance = options.tolerance ?? 1e-6;
  const maxIterations = options.maxIterations ?? 200;
  const pairBudget = options.pairBudget ?? 5_000_000;
  const minContentWords = options.minContentWords ?? 4;
  const n = sentences.length;
  const { vectors, contentWords, df } = vectorize(sentences);
  if (n === 0) return { scores: [], vectors, contentWords };

  // Leave out the most widespread terms while the graph would cost more than the budget.
  const excluded = new Uint8Array(df.length);
  let cost = df.reduce((sum, d) => sum + d * d, 0);
  if (cost > pairBudget) {
    const byDf = df.map((_, id) => id).sort((x, y) => df[y]! - df[x]! || x - y);
    for (const id of byDf) {
      if (cost <= pairBudget) break;
      excluded[id] = 1;
      cost -= df[id]! * df[id]!;
    }
  }

  // Postings: for each term, the sentences containing it and the term's weight there.
  const postings: { sentence: number; weight: number }[][] = df.map(() => []);
  vectors.forEach((v, s) => {
    v.terms.forEach((t, k) => {
      if (!excluded[t]) postings[t]!.push({ sentence: s, weight: v.weights[k]! });
    });
  });

  // Sparse similarity rows (edges i→j, j ≠ i, weight = cosine), built one row at a time. The
  // order of targets in a row follows the postings, so it is the same on every run.
  const rowTargets: Int32Array[] = [];
  const rowWeights: Float32Array[] = [];
  const rowSums = new Float64Array(n);
  const scratch = new Float64Array(n);
  const touched: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = vectors[i]!;
    for (let k = 0; k < v.terms.length; k++) {
      const t = v.terms[k]!;
      if (excluded[t]) continue;
      const wi = v.weights[k]!;
      for (const { sentence: j, weight: wj } of postings[t]!) {
        if (j === i) continue;
        if (scratch[j] === 0) touched.push(j);
        scratch[j]! += wi * wj;
      }
    }
    const targets = new Int32Array(touched.length);
    const weights = new Float32Array(touched.length);
    let sum = 0;
    touched.forEach((j, k) => {
      targets[k] = j;
      weights[k] = scratch[j]!;
      sum += weights[k]!;
      scratch[j] = 0;
    });
    touched.length = 0;
    rowTargets.push(targets);
    rowWeights.push(weights);
    rowSums[i] = sum;
  }

  // Power iteration. A sentence with no edges spreads its score evenly (dangling node).
  let p = new Float64Array(n).fill(1 / n);
  let next = new Float64Array(n);
  for (let iteration = 0; iteration < maxIterations; iteration++) {
    let dangling = 0;
    for (let i = 0; i < n; i++) if (rowSums[i] === 0) dangling += p[i]!;
    next.fill((1 - damping) / n + (damping * dangling) / n);
    for (let i = 0; i < n; i++) {
      if (rowSums[i] === 0) continue;
      const f = (damping * p[i]!) / rowSums[i]!;
      const targets = rowTargets[i]!;
      const weights = rowWeights[i]!;
      for (let k = 0; k < targets.length; k++) next[targets[k]!]! += f * weights[k]!;
    }
    let change = 0;
    for (let i = 0; i < n; i++) change += Math.abs(next[i]! - p[i]!);
    [p, next] = [next, p];
    if (change < tolerance) break;
  }

  const scores = Array.from(p, (score, i) => score * Math.min(1, contentWords[i]! / minContentWords));
  return { scores, vectors, contentWords };
}
