// The Node agentd runs on: the suite itself (run by `npm test`), `npx agentd` from a shell whose
// own Node may be older, and the launcher's refusal of a Node below `engines`.
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import semver from "semver";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../support/agentd.js";

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(`${repoRoot}package.json`, "utf8")) as {
  version: string;
  engines: { node: string };
  devDependencies: Record<string, string>;
};
/** The pinned `node` dev dependency's version. */
const pinned = pkg.devDependencies.node ?? "";

/** Whether `version` (`22.15` counts as 22.15.0) satisfies an `engines.node` range, read as npm
 * reads it (the `semver` package). */
const satisfies = (version: string, range: string) => semver.satisfies(semver.coerce(version) ?? version, range);

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

  it("`engines` is honest: its floor and the pinned Node meet every production dependency's own `engines`", async () => {
    const floor = /^>=(\d+\.\d+(?:\.\d+)?)$/.exec(pkg.engines.node)?.[1];
    expect(floor, `engines.node ${pkg.engines.node} is a plain >= floor`).toBeDefined();
    expect(Number(pinned.split(".")[0])).toBe(24);
    expect(satisfies(pinned, pkg.engines.node)).toBe(true);
    const { stdout } = await run("npm", ["query", ".prod"], { cwd: repoRoot, maxBuffer: 64 << 20 });
    const packages = JSON.parse(stdout) as { name: string; version: string; engines?: { node?: string } }[];
    expect(packages.length).toBeGreaterThan(20);
    const unmet = packages
      .filter((p) => p.engines?.node)
      .filter((p) => !satisfies(floor!, p.engines!.node!) || !satisfies(pinned, p.engines!.node!))
      .map((p) => `${p.name}@${p.version} needs node ${p.engines!.node}`);
    expect(unmet).toEqual([]);
  });

  it("on a machine whose own Node is 24, a bare `node bin/agentd.js` and `npx agentd` both run on it", async () => {
    // A shell PATH whose first `node` is a Node 24 outside node_modules, as on a machine that has one installed.
    const machine = mkdtempSync(join(tmpdir(), "agentd-node24-"));
    try {
      symlinkSync(realpathSync(`${repoRoot}node_modules/.bin/node`), join(machine, "node"));
      const env = { ...process.env, PATH: [machine, shellPath].join(delimiter) };
      const own = execFileSync("node", ["--version"], { env, encoding: "utf8" }).trim();
      expect(Number(own.slice(1).split(".")[0])).toBe(24);
      const bare = await run("node", [`${repoRoot}bin/agentd.js`, "--version"], { cwd: repoRoot, env });
      expect(bare.stdout.trim()).toBe(`agentd ${pkg.version} (Node ${own})`);
      const viaNpx = await run("npx", ["agentd", "--version"], { cwd: repoRoot, env });
      expect(viaNpx.stdout.trim()).toBe(`agentd ${pkg.version} (Node v${pinned})`);
    } finally {
      rmSync(machine, { recursive: true, force: true });
    }
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
      expect(failed?.stderr).toContain("needs Node 22.15 or later");
      expect(failed?.stderr).toContain("npx agentd");
    },
  );
});
