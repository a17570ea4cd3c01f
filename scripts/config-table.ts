// Prints the README's configuration table from the settings table in services/shared/config.ts.
import { SETTINGS, type Setting } from "../services/shared/config.js";

const rows = (SETTINGS as readonly Setting[]).map((s) => {
  const fallback =
    s.default === undefined ? "—" : Array.isArray(s.default) ? s.default.join(",") || "—" : String(s.default);
  return `| \`${s.env}\` | ${s.flag ? `\`${s.flag}\`` : ""} | \`${fallback}\` | ${s.help.replace(/\|/g, "\\|")} |`;
});
console.log(["| environment variable | flag | default | meaning |", "| --- | --- | --- | --- |", ...rows].join("\n"));
