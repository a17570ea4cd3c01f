// `npm ci` (the `prepare` script) builds what an install needs beside the TypeScript sources:
// - the agent SDK and the typed client as JavaScript with .d.ts in dist/ (what another project
//   imports from the package: `agentd-server`, `agentd-server/client`);
// - the web console into dist/console when it is missing or stale.
// An install without dev dependencies (`npm ci --omit=dev`) has neither TypeScript nor Vite: it
// says so and succeeds (the service itself runs from source through tsx); a failing build fails
// the install.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildConsoleIfStale } from "../services/agent/server/console-build.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsc = fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url));
if (existsSync(tsc)) {
  execFileSync(process.execPath, [tsc, "-p", "tsconfig.sdk.json"], { cwd: root, stdio: "inherit" });
  console.log("agentd: SDK and client built into dist/");
} else {
  console.log("agentd: TypeScript is not installed (dev dependencies omitted): SDK and client not built");
}

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
