// `npm pack` of this repository for tests that install the package into another project.
// Packing runs the `prepare` script, which rebuilds dist/ in the repository: two test files
// packing at once (vitest runs two) would write the same files together, so packs take turns
// under a lock folder (mkdir is atomic), one left behind by a killed run expiring.
import { execFile } from "node:child_process";
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "./agentd.js";

const run = promisify(execFile);
const LOCK = join(tmpdir(), `agentd-npm-pack-${Buffer.from(repoRoot).toString("hex").slice(-24)}.lock`);
const STALE_MS = 10 * 60_000;

async function lock(): Promise<void> {
  for (;;) {
    try {
      await mkdir(LOCK);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const age = await stat(LOCK).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > STALE_MS) await rm(LOCK, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Packs the repository into `destination`; returns the tarball's file name (agentd-server-<version>.tgz). */
export async function packAgentd(destination: string): Promise<string> {
  await lock();
  try {
    await run("npm", ["pack", "--silent", "--pack-destination", destination], {
      cwd: repoRoot,
      maxBuffer: 16 * 1024 * 1024,
    });
  } finally {
    await rm(LOCK, { recursive: true, force: true });
  }
  const tarball = (await readdir(destination)).find((f) => f.startsWith("agentd-server-") && f.endsWith(".tgz"));
  if (!tarball) throw new Error(`npm pack wrote no agentd-server tarball into ${destination}`);
  return tarball;
}
