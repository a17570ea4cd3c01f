// The log lines of a real `agentd serve` reach its stdout whole and none is lost at shutdown:
// pino writes to stdout asynchronously (services/shared/log.ts), a turn's lines together, flushed
// when the process exits.
import { spawn } from "node:child_process";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientsFor, spawnAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { expectCode } from "../support/expect.js";

let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
beforeAll(async () => {
  shared = await startSharedTestDatabase();
});
afterAll(async () => {
  await shared?.close();
});

describe("agentd serve's log lines", () => {
  it("are all on stdout after a SIGTERM, the access lines of the calls just before it included", async () => {
    const server = await spawnAgentd({ databaseUrl: shared.url });
    const calls = 40;
    try {
      const client = clientsFor(server.url); // no key: each call ends UNAUTHENTICATED, with an access line
      await Promise.all(
        Array.from({ length: calls }, () => expectCode(client.tasks.listTasks({}), Code.Unauthenticated)),
      );
    } finally {
      // At once, while the last lines may still be buffered.
      expect(await server.kill("SIGTERM")).toBe(0);
    }
    const lines = server
      .output()
      .split("\n")
      .filter((line) => line.startsWith("{"));
    const entries = lines.map((line) => JSON.parse(line) as { msg?: string; rpc?: string; code?: string });
    expect(entries.filter((e) => e.msg === "rpc" && e.code === "unauthenticated")).toHaveLength(calls);
    expect(entries.map((e) => e.msg)).toContain("shutting down gracefully");
    expect(server.output().endsWith("\n")).toBe(true);
  });

  it("include every line logged in the turn the process exits in, whole and in order", async () => {
    // A burst larger than one write (16 KiB), then process.exit in the same turn, through a pipe.
    const lines = 2000;
    const script = `
      const { createLogger } = await import(${JSON.stringify(new URL("../../services/shared/log.ts", import.meta.url).pathname)});
      const log = createLogger({ level: "info" });
      for (let i = 0; i < ${lines}; i++) log.info({ i }, "burst");
      process.exit(7);`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    const code = await new Promise((resolve) => child.once("close", resolve));
    expect(code).toBe(7);
    const entries = output
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as { i: number; msg: string });
    expect(entries.map((e) => e.i)).toEqual(Array.from({ length: lines }, (_, i) => i));
    expect(output.endsWith("\n")).toBe(true);
  });
});
