// The client examples run against a real server: examples/clients/node (the
// typed client) and examples/clients/python (stubs generated with grpc_tools).
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, startAgentd, type TestAgentd } from "../support/agentd.js";

const run = promisify(execFile);
const steps = (stdout: string) =>
  stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown> & { step: string });

/** A python3 that has the gRPC tools (Debian's python3-grpcio and python3-grpc-tools), or undefined. */
async function pythonWithGrpc(): Promise<string | undefined> {
  for (const python of [process.env.PYTHON, "/usr/bin/python3", "python3"].filter(Boolean) as string[]) {
    const ok = await run(python, ["-c", "import grpc, grpc_tools"]).then(
      () => true,
      () => false,
    );
    if (ok) return python;
  }
  return undefined;
}

let server: TestAgentd;
beforeAll(async () => {
  server = await startAgentd();
});
afterAll(async () => {
  await server?.close();
});

describe("client examples", { timeout: 180_000 }, () => {
  it("node: runs, answers, watches and decodes an error with the typed client", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", "examples/clients/node/run.ts"], {
      cwd: repoRoot,
      env: { ...process.env, AGENTD_URL: server.url, AGENTD_API_KEY: server.key },
    });
    const out = steps(stdout);
    expect(out.find((s) => s.step === "run")).toMatchObject({ state: "SUCCEEDED" });
    const watch = out.find((s) => s.step === "watch") as unknown as {
      sequences: number[];
      state: string;
      prompt: string;
    };
    expect(watch).toMatchObject({ state: "SUCCEEDED", prompt: "Approve?" });
    expect(watch.sequences).toEqual(watch.sequences.map((_, i) => i + 1));
    expect(out.find((s) => s.step === "error")).toMatchObject({
      code: "invalid_argument",
      reason: "INPUT_SCHEMA_VIOLATION",
    });
  });

  it("python: stubs from proto/, then run, watch with resume, input and error details over gRPC", async (ctx) => {
    const python = await pythonWithGrpc();
    if (!python) {
      ctx.skip(
        true,
        "python3 with grpc is not installed here (apt-get install python3-grpcio python3-grpc-tools); .ci/run installs it",
      );
      return;
    }
    const stubs = await mkdtemp(join(tmpdir(), "agentd-py-"));
    try {
      await run("bash", ["examples/clients/python/generate.sh", stubs], {
        cwd: repoRoot,
        env: { ...process.env, PYTHON: python },
      });
      const { stdout } = await run(python, ["examples/clients/python/client.py"], {
        cwd: repoRoot,
        env: { ...process.env, AGENTD_STUBS: stubs, AGENTD_URL: server.url, AGENTD_API_KEY: server.key },
      });
      const out = steps(stdout);
      expect(out.find((s) => s.step === "run")).toMatchObject({ state: "TASK_STATE_SUCCEEDED" });
      expect(out.find((s) => s.step === "input")).toMatchObject({ prompt: "Approve?", answer: true });
      const watch = out.find((s) => s.step === "watch") as unknown as {
        sequences: number[];
        state: string;
        resumed: number;
      };
      expect(watch).toMatchObject({ state: "TASK_STATE_SUCCEEDED", resumed: 1 });
      expect(watch.sequences).toEqual(watch.sequences.map((_, i) => i + 1));
      const errors = out.filter((s) => s.step === "error");
      expect(errors[0]).toMatchObject({ code: "NOT_FOUND", reason: "AGENT_NOT_FOUND" });
      expect(errors[1]).toMatchObject({ code: "INVALID_ARGUMENT", field_violations: [{ field: "input.steps" }] });
    } finally {
      await rm(stubs, { recursive: true, force: true });
    }
  });
});
