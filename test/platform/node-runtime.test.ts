// The Node agentd runs on: the suite itself (run by `npm test`), `npx agentd` from a shell whose
// own Node may be older, and the launcher's refusal of a Node below `engines`.
import { execFile, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { delimiter } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../support/agentd.js";

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(`${repoRoot}package.json`, "utf8")) as {
  version: string;
  devDependencies: Record<string, string>;
};

/** The PATH of a user's shell: npm's node_modules/.bin entries removed, so `node` is the system's. */
const shellPath = (process.env.PATH ?? "")
  .split(delimiter)
  .filter((dir) => !dir.includes("node_modules"))
  .join(delimiter);
const shellEnv = { ...process.env, PATH: shellPath };

function systemNode(): string | undefined {
  try {
    return execFileSync("node", ["--version"], { env: shellEnv, encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}
const system = systemNode();
const systemMajor = system ? Number(system.slice(1).split(".")[0]) : undefined;

describe("Node runtime", () => {
  it("runs this suite on Node 24 (the pinned `node` dev dependency is first on npm's PATH)", () => {
    expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(24);
  });

  it.skipIf(system === undefined)("`npx agentd` runs on the pinned Node 24 whatever the shell's Node is", async () => {
    const { stdout } = await run("npx", ["agentd", "--version"], { cwd: repoRoot, env: shellEnv });
    expect(stdout.trim()).toBe(`agentd ${pkg.version} (Node v${pkg.devDependencies.node})`);
    // On this machine the shell's Node may be 20: say which one the check ran against.
    console.info(`shell node ${system}; npx agentd ran on ${stdout.trim()}`);
  });

  it.skipIf(systemMajor === undefined || systemMajor >= 22)(
    "a bare `node bin/agentd.js` on Node 20 says how to run it instead of failing obscurely",
    async () => {
      const failed = await run("node", [`${repoRoot}bin/agentd.js`, "--version"], {
        cwd: repoRoot,
        env: shellEnv,
      }).then(
        () => undefined,
        (error: { code: number; stderr: string }) => error,
      );
      expect(failed?.code).toBe(1);
      expect(failed?.stderr).toContain("needs Node 22.12 or later");
      expect(failed?.stderr).toContain("npx agentd");
    },
  );
});
