// Keeps the console's build fresh for `agentd dev` and the browser tests: npm ci builds it
// (`prepare`), and this rebuilds it when it is missing or older than its sources (a pull without
// npm ci). Vite is a dev dependency: where it is absent the console page says how to build.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { CONSOLE_DIST } from "./console.js";

const SOURCES = new URL("../../../web/console/", import.meta.url).pathname;
/** What the bundle also takes in: the typed client and the generated code. */
const SHARED_SOURCES = ["../../../client/", "../../../gen/agentd/"].map((p) => new URL(p, import.meta.url).pathname);

function newest(dir: string): number {
  let max = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    max = Math.max(max, e.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return max;
}

/** True when dist/console is missing or older than web/console, client/ or gen/. */
function consoleBuildIsStale(): boolean {
  const index = join(CONSOLE_DIST, "index.html");
  if (!existsSync(SOURCES)) return false;
  if (!existsSync(index)) return true;
  const sources = [SOURCES, ...SHARED_SOURCES.filter((dir) => existsSync(dir))];
  return statSync(index).mtimeMs < Math.max(...sources.map(newest));
}

/** Builds the console with Vite when stale. Throws if the build fails or Vite is not installed. */
export async function buildConsoleIfStale(): Promise<"fresh" | "built"> {
  if (!consoleBuildIsStale()) return "fresh";
  const { build } = await import("vite");
  await build({ configFile: join(SOURCES, "vite.config.ts"), logLevel: "warn" });
  return "built";
}
