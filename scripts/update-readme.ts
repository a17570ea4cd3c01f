// `npm run docs`: rewrites the README's configuration table from the settings table.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const table = execFileSync(process.execPath, ["--import", "tsx", "scripts/config-table.ts"], {
  encoding: "utf8",
}).trim();
const readme = readFileSync("README.md", "utf8");
const next = readme.replace(
  /<!-- config-table -->[\s\S]*?<!-- \/config-table -->/,
  `<!-- config-table -->\n${table}\n<!-- /config-table -->`,
);
writeFileSync("README.md", next);
