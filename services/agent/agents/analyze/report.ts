// The Markdown report of `analyze-document`. Pure.
import type { AnalyzeOutput } from "../analyze-document.js";

const list = (items: string[]) => (items.length > 0 ? items.join(", ") : "—");

export function renderReport(a: AnalyzeOutput): string {
  const lines = [
    `# ${a.title}`,
    "",
    "## Overview",
    "",
    `- Sections: ${a.structure.sections}; words: ${a.structure.words}; sentences: ${a.structure.sentences}`,
    `- Flesch reading ease: ${a.readability.flesch_reading_ease} (${a.readability.level})`,
    `- Sentiment: ${a.sentiment.label} (${a.sentiment.score})`,
    `- Keywords: ${list(a.keywords.map((k) => k.term))}`,
    `- People: ${list(a.entities.people)}`,
    `- Places: ${list(a.entities.places)}`,
    `- Organizations: ${list(a.entities.organizations)}`,
    `- Dates: ${list(a.entities.dates)}`,
    "",
    "## Sections",
  ];
  for (const s of a.sections) {
    lines.push(
      "",
      `### ${s.index + 1}. ${s.heading}`,
      "",
      s.summary || "_(no text)_",
      "",
      `- Keywords: ${list(s.keywords)}`,
      `- Sentiment: ${s.sentiment.label} (${s.sentiment.score}); reading ease ${s.readability.flesch_reading_ease}`,
      `- Entities: ${list([...s.entities.people, ...s.entities.places, ...s.entities.organizations, ...s.entities.dates])}`,
    );
  }
  return `${lines.join("\n")}\n`;
}
