// `<data>/server.json`: where a running `agentd dev`/`serve` on the embedded
// database can be reached, so that `agentd keys …` on the same data folder goes
// through the running process (its loopback database endpoint) instead of
// refusing because the folder is open. Mode 0600: it names a database that
// takes loopback connections without a password.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";

export interface ServerFile {
  pid: number;
  /** The RPC URL. */
  url: string;
  /** The running process's embedded database endpoint (postgres://…@127.0.0.1:port/…). */
  databaseUrl: string;
}

const fileOf = (dataDir: string) => join(resolve(dataDir), "server.json");

export async function writeServerFile(dataDir: string, entry: Omit<ServerFile, "pid">): Promise<() => Promise<void>> {
  const file = fileOf(dataDir);
  await writeFile(file, `${JSON.stringify({ pid: process.pid, ...entry })}\n`, { mode: 0o600 });
  return () => rm(file, { force: true });
}

/** The running server of this data folder, if its process is alive. */
export async function findRunningServer(dataDir: string): Promise<ServerFile | undefined> {
  const text = await readFile(fileOf(dataDir), "utf8").catch(() => "");
  if (!text) return undefined;
  try {
    const entry = JSON.parse(text) as ServerFile;
    if (!Number.isInteger(entry.pid) || typeof entry.databaseUrl !== "string") return undefined;
    process.kill(entry.pid, 0);
    return entry;
  } catch {
    return undefined; // unreadable, or left by a process that died
  }
}
