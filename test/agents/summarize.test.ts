import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createAgentRegistry } from "../../services/agent/agents/registry.js";
import { rankSentences } from "../../services/agent/agents/summarize/rank.js";
import { trimToWords } from "../../services/agent/agents/summarize/select.js";
import { splitSentences } from "../../services/agent/agents/summarize/sentences.js";
import { summarizeText } from "../../services/agent/agents/summarize/summarize-text.js";
import { contentTerms, countWords, stem } from "../../services/agent/agents/summarize/tokens.js";
import { summarizeAgent } from "../../services/agent/agents/summarize.js";
import { createFakeContext } from "./fake-context.js";
import { HEAT_ISLAND_ARTICLE, TWELVE_WORD_SENTENCES } from "./fixtures.js";

const texts = (text: string) => splitSentences(text).map((s) => s.text);

describe("splitSentences", () => {
  it("does not cut after titles, Latin abbreviations, initials or month names", () => {
    expect(
      texts("Mr. Smith met Dr. Jones on Jan. 5 in St. Louis. They spoke about trade, e.g. tariffs and quotas."),
    ).toEqual(["Mr. Smith met Dr. Jones on Jan. 5 in St. Louis.", "They spoke about trade, e.g. tariffs and quotas."]);
    expect(texts("J. R. R. Tolkien wrote it. See p. 12 and No. 5 for more.")).toEqual([
      "J. R. R. Tolkien wrote it.",
      "See p. 12 and No. 5 for more.",
    ]);
  });

  it("ends a sentence at an abbreviation only before a sentence opener", () => {
    expect(texts("He moved to the U.S. The weather was better there.")).toEqual([
      "He moved to the U.S.",
      "The weather was better there.",
    ]);
    expect(texts("The U.S. Army arrived at 5 p.m. on Monday.")).toEqual(["The U.S. Army arrived at 5 p.m. on Monday."]);
    expect(texts("They sold apples, pears, etc. The shop closed at noon.")).toEqual([
      "They sold apples, pears, etc.",
      "The shop closed at noon.",
    ]);
  });

  it("keeps decimals, versions and domain names whole", () => {
    expect(texts("Growth was 2.5 percent in v1.2 of the plan. Read more on example.com today.")).toEqual([
      "Growth was 2.5 percent in v1.2 of the plan.",
      "Read more on example.com today.",
    ]);
  });

  it("handles quotations, question marks and ellipses", () => {
    expect(
      texts('"Is it done?" she asked. "Yes." He left the room... and never came back. Why? Nobody knows!'),
    ).toEqual([
      '"Is it done?" she asked.',
      '"Yes."',
      "He left the room... and never came back.",
      "Why?",
      "Nobody knows!",
    ]);
  });

  it("joins hard-wrapped lines and cuts at paragraphs, headings and list items", () => {
    const text = [
      "# Findings",
      "The survey covered twelve towns and found that most residents",
      "wanted more buses. Few wanted new roads.",
      "",
      "Next steps",
      "- Publish the report",
      "- Hold two public meetings. Invite the mayor and",
      "  the council.",
      "1. Budget the buses",
      "2) Hire drivers",
      "-----",
    ].join("\n");
    expect(texts(text)).toEqual([
      "Findings",
      "The survey covered twelve towns and found that most residents wanted more buses.",
      "Few wanted new roads.",
      "Next steps",
      "Publish the report",
      "Hold two public meetings.",
      "Invite the mayor and the council.",
      "Budget the buses",
      "Hire drivers",
    ]);
  });

  it("reports spans of the original text", () => {
    const text = "First sentence here.\r\n\r\n  Second one\nwraps here. Third!";
    for (const s of splitSentences(text)) {
      expect(text.slice(s.start, s.end).replace(/\s+/g, " ")).toBe(s.text);
    }
    expect(splitSentences(text).map((s) => s.index)).toEqual([0, 1, 2]);
  });

  it("splits text that never capitalizes its sentences", () => {
    expect(texts("i went home. then i slept. it was nice.")).toEqual(["i went home.", "then i slept.", "it was nice."]);
  });

  it("finds nothing in text without words", () => {
    expect(texts("   \n\n  ... --- ***")).toEqual([]);
  });
});

describe("tokens", () => {
  it("keeps content words, lowercased, with plurals folded", () => {
    expect(contentTerms("The Cities' studies of emissions and the crisis's analyses")).toEqual([
      "city",
      "study",
      "emission",
      "crisis",
      "analyse",
    ]);
    expect(stem("glass")).toBe("glass");
    expect(stem("status")).toBe("status");
    expect(countWords("  two\nwords ")).toBe(2);
  });
});

describe("rankSentences", () => {
  it("scores sentences about the main subject above asides", () => {
    const sentences = texts(HEAT_ISLAND_ARTICLE);
    const { scores } = rankSentences(sentences);
    const byScore = sentences.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
    const aside = sentences.findIndex((s) => s.startsWith("My neighbour"));
    const mayor = sentences.findIndex((s) => s.startsWith("The mayor's office"));
    const definition = sentences.findIndex((s) => s.startsWith("The urban heat island forms"));
    expect(byScore.slice(0, 3)).toContain(definition);
    expect(byScore.slice(-3)).toEqual(expect.arrayContaining([aside, mayor]));
  });

  it("stays fast on a text made of one word repeated", () => {
    const started = performance.now();
    const { scores } = rankSentences(Array.from({ length: 20_000 }, () => "Go now."));
    expect(scores).toHaveLength(20_000);
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe("summarizeText", () => {
  it("picks the central sentences of an article, in text order", () => {
    const result = summarizeText(HEAT_ISLAND_ARTICLE, 60);
    const all = texts(HEAT_ISLAND_ARTICLE);
    expect(result.source_sentences).toBe(all.length);
    expect(result.sentences.map((s) => s.text)).toEqual(
      expect.arrayContaining([
        "The urban heat island forms because city surfaces absorb and store heat.",
        "Cities have begun to fight the urban heat island with trees, green roofs and reflective surfaces.",
      ]),
    );
    expect(result.summary).not.toMatch(/neighbour|mayor|pharmacist|economists/);
    const indices = result.sentences.map((s) => s.index);
    expect(indices).toEqual([...indices].sort((a, b) => a - b));
    expect(result.summary).toBe(result.sentences.map((s) => s.text).join(" "));
    expect(Math.max(...result.sentences.map((s) => s.score))).toBe(1);
  });

  it("respects max_words and counts the words it returns", () => {
    for (const maxWords of [10, 25, 40, 80, 150, 400]) {
      const result = summarizeText(HEAT_ISLAND_ARTICLE, maxWords);
      expect(result.word_count).toBeLessThanOrEqual(maxWords);
      expect(result.word_count).toBe(countWords(result.summary));
      expect(result.sentences.length).toBeGreaterThan(0);
    }
    const everything = summarizeText(HEAT_ISLAND_ARTICLE, 2000);
    expect(everything.source_words).toBe(countWords(HEAT_ISLAND_ARTICLE));
    expect(everything.word_count).toBe(everything.source_words);
  });

  it("fills the budget with whole sentences", () => {
    expect(summarizeText(TWELVE_WORD_SENTENCES, 24).word_count).toBe(24);
    expect(summarizeText(TWELVE_WORD_SENTENCES, 23).sentences).toHaveLength(1);
    expect(summarizeText(TWELVE_WORD_SENTENCES, 2000).sentences).toHaveLength(5);
  });

  it("returns a text of one sentence as it is", () => {
    const result = summarizeText("Dr. Brown measured 3.5 mm of rain in the U.S. capital.", 100);
    expect(result).toEqual({
      summary: "Dr. Brown measured 3.5 mm of rain in the U.S. capital.",
      sentences: [{ index: 0, text: "Dr. Brown measured 3.5 mm of rain in the U.S. capital.", score: 1 }],
      word_count: 11,
      source_sentences: 1,
      source_words: 11,
    });
  });

  it("cuts a single sentence longer than the budget at a word boundary", () => {
    const words = Array.from({ length: 40 }, (_, i) => `word${i}`);
    const result = summarizeText(`${words.join(", ")}.`, 10);
    expect(result.word_count).toBe(10);
    expect(result.summary).toBe(`${words.slice(0, 10).join(", ")}…`);
    expect(trimToWords("one two three", 5)).toBe("one two three");
  });

  it("prefers short whole sentences to cutting a long one", () => {
    const long = `The ${Array.from({ length: 30 }, () => "long").join(" ")} sentence about rain.`;
    const result = summarizeText(`${long} Rain fell on the town. Rain fell again later.`, 10);
    expect(result.sentences.map((s) => s.text)).toEqual(["Rain fell on the town.", "Rain fell again later."]);
    expect(result.summary).not.toContain("…");
  });

  it("does not repeat a sentence that appears twice", () => {
    const text =
      "Bees pollinate most fruit crops. Farmers rent hives every spring. Bees pollinate most fruit crops. Hives travel by truck between farms.";
    const result = summarizeText(text, 100);
    expect(result.sentences.filter((s) => s.text === "Bees pollinate most fruit crops.")).toHaveLength(1);
  });

  it("is deterministic", () => {
    expect(summarizeText(HEAT_ISLAND_ARTICLE, 70)).toEqual(summarizeText(HEAT_ISLAND_ARTICLE, 70));
  });

  it("summarizes 200,000 characters promptly", () => {
    const paragraphs = HEAT_ISLAND_ARTICLE.split("\n\n");
    let text = "";
    for (let i = 0; text.length < 199_000; i++)
      text += `${paragraphs[i % paragraphs.length]!.replace(/\.(\s|$)/g, ` ${i}.$1`)}\n\n`;
    text = text.slice(0, 200_000);
    const started = performance.now();
    const result = summarizeText(text, 2000);
    expect(result.word_count).toBeLessThanOrEqual(2000);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it("returns its sentences, in order, within the budget (property)", () => {
    const word = fc.oneof(
      fc.stringMatching(/^[A-Za-z]{1,9}$/),
      fc.constantFrom("Mr.", "U.S.", "e.g.", "3.5", "etc.", '"Yes!"', "(see", "p.", "The", "it", "…", "-"),
    );
    const sentence = fc
      .tuple(fc.array(word, { minLength: 1, maxLength: 25 }), fc.constantFrom(".", "!", "?", "", "..."))
      .map(([ws, end]) => ws.join(" ") + end);
    const separator = fc.constantFrom(" ", "\n", "\n\n", "\n- ", "  ");
    const text = fc
      .array(fc.tuple(sentence, separator), { minLength: 1, maxLength: 40 })
      .map((parts) => parts.map(([s, sep]) => s + sep).join(""));
    const check = (input: string, maxWords: number) => {
      const source = splitSentences(input).map((s) => s.text);
      const result = summarizeText(input, maxWords);
      expect(result.word_count).toBeLessThanOrEqual(maxWords);
      expect(result.word_count).toBe(countWords(result.summary));
      expect(result.source_sentences).toBe(source.length);
      const indices = result.sentences.map((s) => s.index);
      expect(indices).toEqual([...new Set(indices)].sort((a, b) => a - b));
      if (
        result.sentences.length === 1 &&
        result.sentences[0]!.text.endsWith("…") &&
        source[indices[0]!] !== result.sentences[0]!.text
      ) {
        // The one allowed cut: a sentence longer than the whole budget.
        const original = source[indices[0]!]!;
        expect(countWords(original)).toBeGreaterThan(maxWords);
        const kept = result.sentences[0]!.text.slice(0, -1).split(" ");
        expect(original.split(" ").slice(0, kept.length - 1)).toEqual(kept.slice(0, -1));
      } else {
        for (const s of result.sentences) expect(s.text).toBe(source[s.index]);
      }
      expect(result.sentences.length > 0).toBe(source.length > 0);
    };
    fc.assert(fc.property(text, fc.integer({ min: 10, max: 300 }), check), { numRuns: 300 });
    fc.assert(fc.property(fc.string({ maxLength: 400 }), fc.integer({ min: 10, max: 50 }), check), { numRuns: 200 });
  });
});

describe("summarize agent", () => {
  const registry = createAgentRegistry([summarizeAgent]);

  it("reports each phase, streams the chosen sentences and returns output matching its schema", async () => {
    const fake = createFakeContext();
    const output = await summarizeAgent.run({ text: HEAT_ISLAND_ARTICLE, max_words: 50 }, fake.ctx);
    expect(fake.progress.map((p) => [p.step, p.totalSteps])).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    expect(fake.progress.at(-1)!.percent).toBe(100);
    expect(fake.deltas).toEqual(output.sentences.map((s) => `${s.text} `));
    expect(fake.deltas.join("").trim()).toBe(output.summary);
    expect(registry.validateOutput("summarize", output)).toEqual([]);
    expect(output).toEqual(summarizeText(HEAT_ISLAND_ARTICLE, 50));
  });

  it("uses 100 words when max_words is not given", async () => {
    const output = await summarizeAgent.run({ text: HEAT_ISLAND_ARTICLE }, createFakeContext().ctx);
    expect(output).toEqual(summarizeText(HEAT_ISLAND_ARTICLE, 100));
  });

  it("validates its input", () => {
    expect(registry.validateInput("summarize", { text: "Hello there." })).toEqual([]);
    expect(registry.validateInput("summarize", { text: "x".repeat(200_001), max_words: 9 })).toEqual([
      { field: "input.text", description: "must have at most 200000 characters", reason: "MAX_LENGTH" },
      { field: "input.max_words", description: "must be >= 10", reason: "MINIMUM" },
    ]);
  });

  it("stops between phases when the signal fires, with the signal's reason", async () => {
    const fake = createFakeContext();
    const reason = new Error("task cancelled");
    const ctx = {
      ...fake.ctx,
      progress: async (update: { step?: number }) => {
        await fake.ctx.progress(update);
        if (update.step === 1) fake.controller.abort(reason);
      },
    };
    await expect(summarizeAgent.run({ text: HEAT_ISLAND_ARTICLE }, ctx)).rejects.toBe(reason);
    expect(fake.progress).toHaveLength(1);
    expect(fake.deltas).toEqual([]);
  });

  it("does not start when already aborted", async () => {
    const fake = createFakeContext();
    fake.controller.abort(new Error("timeout"));
    await expect(summarizeAgent.run({ text: "Some text." }, fake.ctx)).rejects.toThrow("timeout");
    expect(fake.calls).toEqual([]);
  });
});
