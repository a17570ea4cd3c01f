// Splitting a document into sections: Markdown ATX headings (`# …` to `###### …`) when there
// are any, otherwise paragraphs (blocks separated by blank lines). Pure.

export interface Section {
  /** The heading's text, or "Paragraph k" when the document has no headings. */
  heading: string;
  /** Heading level 1–6; 0 for text before the first heading or paragraph sections. */
  level: number;
  text: string;
}

const HEADING = /^(#{1,6})[ \t]+(.+?)[ \t#]*$/;

export function splitSections(document: string, maxSections = 500): Section[] {
  const lines = document.replace(/\r\n?/g, "\n").split("\n");
  let inFence = false;
  const hasHeading = lines.some((line) => {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    return !inFence && HEADING.test(line);
  });
  const sections: Section[] = [];
  if (hasHeading) {
    let current: Section = { heading: "Introduction", level: 0, text: "" };
    inFence = false;
    for (const line of lines) {
      if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
      const m = inFence ? null : HEADING.exec(line);
      if (m) {
        if (current.text.trim() !== "" || current.level > 0) sections.push({ ...current, text: current.text.trim() });
        current = { heading: m[2]!.trim(), level: m[1]!.length, text: "" };
      } else current.text += `${line}\n`;
    }
    if (current.text.trim() !== "" || current.level > 0) sections.push({ ...current, text: current.text.trim() });
  } else {
    const paragraphs = document
      .replace(/\r\n?/g, "\n")
      .split(/\n[ \t]*\n/)
      .map((p) => p.trim())
      .filter(Boolean);
    paragraphs.forEach((text, i) => {
      sections.push({ heading: `Paragraph ${i + 1}`, level: 0, text });
    });
  }
  if (sections.length <= maxSections) return sections;
  // Too many: fold the tail into the last allowed section rather than drop text.
  const kept = sections.slice(0, maxSections);
  kept[maxSections - 1] = {
    ...kept[maxSections - 1]!,
    text: [kept[maxSections - 1]!.text, ...sections.slice(maxSections).map((s) => s.text)].join("\n\n"),
  };
  return kept;
}

/** Structure counts of the raw document (Markdown-aware). */
export function structureStats(document: string) {
  const lines = document.replace(/\r\n?/g, "\n").split("\n");
  let codeBlocks = 0;
  let inFence = false;
  let headings = 0;
  let listItems = 0;
  for (const line of lines) {
    if (/^\s*(```|~~~)/.test(line)) {
      if (!inFence) codeBlocks++;
      inFence = !inFence;
      continue;
    }
    if (inFence) continue;
    if (HEADING.test(line)) headings++;
    else if (/^\s*([-*+]|\d+[.)])\s+\S/.test(line)) listItems++;
  }
  const paragraphs = document.split(/\n[ \t]*\n/).filter((p) => p.trim() !== "").length;
  return {
    characters: document.length,
    lines: lines.length,
    paragraphs,
    headings,
    list_items: listItems,
    code_blocks: codeBlocks,
  };
}
