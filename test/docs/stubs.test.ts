// The README's "Other languages" blocks as a user pastes them. The buf template runs with the
// remote plugins swapped for a local stand-in (no network here) that records what protoc-gen-go
// would be given: every file it generates needs a go_package, and google.rpc must map to genproto.
// The Python block runs as written against a real server when python3 has the gRPC tools.
import { execFile } from "node:child_process";
import { chmod, cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, startAgentd, type TestAgentd } from "../support/agentd.js";

const run = promisify(execFile);
const readme = await readFile(join(repoRoot, "README.md"), "utf8");

/** The fenced block right after `<!-- stubs: name -->`. */
function block(name: string): string {
  const m = new RegExp(`<!-- stubs: ${name.replace(/\./g, "\\.")} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\\n\`\`\`\\n`).exec(
    readme,
  );
  if (!m) throw new Error(`the README no longer has the block <!-- stubs: ${name} -->`);
  return m[1]!;
}

/** A protoc plugin that writes, per request, each file's role (GEN or dep), name and go_package. */
const INSPECT_PLUGIN = `
import { readFileSync } from "node:fs";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CodeGeneratorRequestSchema, CodeGeneratorResponseSchema, CodeGeneratorResponse_Feature } from "@bufbuild/protobuf/wkt";
const req = fromBinary(CodeGeneratorRequestSchema, readFileSync(0));
const lines = req.protoFile.map((f) => [req.fileToGenerate.includes(f.name) ? "GEN" : "dep", f.name, f.options?.goPackage || "-", f.options?.javaPackage || "-"].join(" "));
const name = process.argv[2] + ".txt";
const res = create(CodeGeneratorResponseSchema, {
  supportedFeatures: BigInt(CodeGeneratorResponse_Feature.PROTO3_OPTIONAL),
  file: [{ name, content: lines.join("\\n") + "\\n" }],
});
process.stdout.write(toBinary(CodeGeneratorResponseSchema, res));
`;

function pythonWithGrpc(): Promise<string | undefined> {
  const candidates = [process.env.PYTHON, "/usr/bin/python3", "python3"].filter(Boolean) as string[];
  return candidates.reduce<Promise<string | undefined>>(
    (found, python) =>
      found.then(
        (f) =>
          f ??
          run(python, ["-c", "import grpc, grpc_tools"]).then(
            () => python,
            () => undefined,
          ),
      ),
    Promise.resolve(undefined),
  );
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agentd-stubs-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("README: stubs for other languages", { timeout: 120_000 }, () => {
  it("the buf template gives Go an import path for every file and google.rpc from genproto", async () => {
    const template = block("buf.gen.stubs.yaml");
    expect(readme).toContain("npx buf generate --template buf.gen.stubs.yaml");
    const plugins = [...template.matchAll(/^ {2}- remote: (\S+)$/gm)].map((m) => m[1]!);
    expect(plugins).toEqual([
      "buf.build/protocolbuffers/go",
      "buf.build/grpc/go",
      "buf.build/protocolbuffers/java",
      "buf.build/grpc/java",
    ]);
    const work = join(dir, "buf");
    await mkdir(work);
    await cp(join(repoRoot, "proto"), join(work, "proto"), { recursive: true });
    await symlink(join(repoRoot, "node_modules"), join(work, "node_modules"));
    await writeFile(join(work, "inspect.mjs"), INSPECT_PLUGIN);
    await chmod(join(work, "inspect.mjs"), 0o755);
    const local = template.replace(
      /^ {2}- remote: buf\.build\/(\S+)$/gm,
      (_, name: string) => `  - local: ["node", "inspect.mjs", "${name.replace("/", "-")}"]`,
    );
    await writeFile(join(work, "buf.gen.stubs.yaml"), local);
    await run("npx", ["buf", "generate", "--template", "buf.gen.stubs.yaml"], {
      cwd: work,
      env: { ...process.env, PATH: `${repoRoot}node_modules/.bin:${process.env.PATH}` },
    });

    const files = (await readFile(join(work, "stubs/go/protocolbuffers-go.txt"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => l.split(" ") as [string, string, string, string]);
    const generated = files.filter(([role]) => role === "GEN").map(([, name]) => name);
    expect(generated.sort()).toEqual([
      "agentd/v1/agent_service.proto",
      "agentd/v1/auth_service.proto",
      "agentd/v1/key_service.proto",
      "agentd/v1/task.proto",
      "agentd/v1/task_service.proto",
      "agentd/v1/webhook_service.proto",
    ]);
    for (const [, name, goPackage] of files) expect(goPackage, name).not.toBe("-");
    const goPackageOf = new Map(files.map(([, name, goPackage]) => [name, goPackage]));
    expect(goPackageOf.get("agentd/v1/task.proto")).toBe("example.com/yourapp/stubs/go/agentd/v1;agentdv1");
    expect(goPackageOf.get("google/rpc/error_details.proto")).toBe(
      "google.golang.org/genproto/googleapis/rpc/errdetails;errdetails",
    );
    const java = await readFile(join(work, "stubs/java/protocolbuffers-java.txt"), "utf8");
    expect(java).toMatch(/^GEN agentd\/v1\/task\.proto \S+ com\.agentd\.v1$/m);
    expect(java).toMatch(/^dep google\/rpc\/error_details\.proto \S+ com\.google\.rpc$/m);
  });

  it("the Python block runs as written against a server", async (ctx) => {
    const python = await pythonWithGrpc();
    if (!python) {
      ctx.skip(true, "python3 with grpc is not installed here (apt-get install python3-grpcio python3-grpc-tools)");
      return;
    }
    let server: TestAgentd | undefined;
    const bin = join(dir, "bin");
    try {
      server = await startAgentd();
      // The user's python3 is one with the gRPC tools; the server and its key are this test's.
      await mkdir(bin, { recursive: true });
      await symlink(
        python.startsWith("/") ? python : (await run("which", [python])).stdout.trim(),
        join(bin, "python3"),
      );
      const keyFile = join(dir, "dev-api-key");
      await writeFile(keyFile, `${server.key}\n`);
      const script = block("python")
        .replace("AGENTD_URL=127.0.0.1:8080", `AGENTD_URL=${new URL(server.url).host}`)
        .replace("$(cat .agentd/dev-api-key)", `$(cat ${keyFile})`);
      expect(script).not.toContain(".agentd/dev-api-key");
      const { stdout } = await run("bash", ["-euo", "pipefail", "-c", script], {
        cwd: repoRoot,
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, PYTHON: "" },
      });
      const steps = stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { step: string; state?: string });
      expect(steps.find((s) => s.step === "run")).toMatchObject({ state: "TASK_STATE_SUCCEEDED" });
      expect(steps.find((s) => s.step === "watch")).toMatchObject({ state: "TASK_STATE_SUCCEEDED" });
    } finally {
      await server?.close();
      await rm(join(repoRoot, "examples/clients/python/gen"), { recursive: true, force: true });
    }
  });
});
