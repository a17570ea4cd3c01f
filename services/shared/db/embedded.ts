// Embedded Postgres: PGlite (Postgres compiled to WASM) on a data folder, served
// on a loopback port so that the same postgres.js code runs against it.
//
// PGlite is ONE backend session; embedded-session.ts lends it to one client
// connection per whole protocol cycle, so many clients, even in other
// processes, are safe: they take turns, as if the database had one connection.
// Session settings (SET), named prepared statements, LISTEN (NOTIFY does not
// reach other clients: use the in-process wake-up bus) and advisory locks (they
// exclude nothing) are shared between clients; transactions exclude each other.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import type { Server } from "node:net";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { type Logger, silentLogger } from "../log.js";
import { serveSession } from "./embedded-session.js";

export interface EmbeddedPostgres {
  /** postgres://postgres@HOST:PORT/postgres (no password: loopback only). */
  url: string;
  /** Stops accepting, disconnects clients (rolling back their open
   * transactions) and closes PGlite cleanly, so the folder can be reopened. */
  close(): Promise<void>;
}

export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  logger?: Logger;
}): Promise<EmbeddedPostgres> {
  const logger = opts.logger ?? silentLogger();
  const host = opts.host ?? "127.0.0.1";
  await mkdir(opts.dataDir, { recursive: true });
  const unlock = await lockDataDir(opts.dataDir);
  let db: PGlite;
  try {
    const started = performance.now();
    db = await PGlite.create({ dataDir: opts.dataDir });
    logger.debug({ dataDir: opts.dataDir, ms: Math.round(performance.now() - started) }, "embedded database opened");
  } catch (error) {
    await unlock();
    throw new Error(`cannot open the embedded database in ${opts.dataDir}`, { cause: error });
  }
  const served = serveSession(db, logger);
  let port: number;
  try {
    port = await listen(served.server, opts.port ?? 0, host);
  } catch (error) {
    await db.close().catch(() => {});
    await unlock();
    throw error;
  }
  logger.info({ dataDir: opts.dataDir, host, port }, "embedded database listening");

  let closing: Promise<void> | undefined;
  return {
    url: `postgres://postgres@${host.includes(":") ? `[${host}]` : host}:${port}/postgres`,
    close() {
      closing ??= (async () => {
        await served.close();
        try {
          await db.close();
        } finally {
          await unlock();
        }
        logger.debug({ dataDir: opts.dataDir }, "embedded database closed");
      })();
      return closing;
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const address = server.address();
      if (address === null || typeof address === "string") reject(new Error("expected a TCP address"));
      else resolve(address.port);
    });
  });
}

// Two PGlite instances on one folder corrupt it, and PGlite does not check:
// keep a pid file in the folder while it is open.
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = join(dataDir, "agentd.lock");
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(file, String(process.pid), { flag: "wx" });
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw error;
    }
    const pid = Number.parseInt(await readFile(file, "utf8").catch(() => ""), 10);
    if (pid > 0 && isAlive(pid)) {
      throw new Error(`the embedded database in ${dataDir} is already open (process ${pid}; ${file})`);
    }
    await rm(file, { force: true }); // left by a process that died: take it over
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
