// `npm ci` (the `prepare` script): builds the web console into dist/console when it is missing or
// stale. An install without dev dependencies (`npm ci --omit=dev`) has no Vite: it says so and
// succeeds, and / then explains how to build; a failing build fails the install.
import { buildConsoleIfStale } from "../services/agent/server/console-build.js";

try {
  const result = await buildConsoleIfStale();
  console.log(result === "built" ? "agentd: web console built into dist/console" : "agentd: web console is up to date");
} catch (err) {
  if ((err as { code?: string }).code === "ERR_MODULE_NOT_FOUND" && String((err as Error).message).includes("vite")) {
    console.log("agentd: Vite is not installed (dev dependencies omitted): web console not built");
  } else {
    throw err;
  }
}
