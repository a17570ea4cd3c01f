// The README is where users look: every setting must be documented there.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SETTINGS } from "../../services/shared/config.js";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

describe("README", () => {
  it.each(SETTINGS.map((s) => [s.env]))("documents %s (run `npm run docs` after adding a setting)", (env) => {
    expect(readme).toContain(`\`${env}\``);
  });

  it("names the two commands", () => {
    expect(readme).toContain("npm ci && npx agentd dev");
    expect(readme).toContain("npm ci && npm test");
  });
});
