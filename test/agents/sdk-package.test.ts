// Bring your own agent, from another project: the packed package installs into a fresh project,
// which writes agents with `import { defineAgent, AgentFailure } from "agentd-server"` (types
// checked by tsc), and `agentd serve --agents <folder>` serves them — two versions at once,
// routed by name@version — and an installed agent package named by its package name. A module
// with a bad schema stops start-up with an error naming it.
import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { CHILD_TEST_ENV, clientsFor, repoRoot } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { plain, value } from "../support/json.js";
import { packAgentd } from "../support/pack.js";

const run = promisify(execFile);

const greet = (version: string, greeting: string) => `import { AgentFailure, defineAgent } from "agentd-server";

interface In { name: string }
interface Out { greeting: string; version: string }

export default defineAgent<In, Out>({
  name: "greet",
  version: "${version}",
  description: "Greets someone by name.",
  inputSchema: { type: "object", properties: { name: { type: "string" } }, required: ["name"], additionalProperties: false },
  outputSchema: { type: "object", properties: { greeting: { type: "string" }, version: { type: "string" } }, required: ["greeting", "version"] },
  async run(input, ctx) {
    if (input.name === "nobody") throw new AgentFailure("NO_ONE_TO_GREET", "there is nobody to greet");
    ctx.delta("${greeting}, ");
    await ctx.progress({ step: 1, totalSteps: 1 });
    return { greeting: \`${greeting}, \${input.name}!\`, version: "${version}" };
  },
});
`;

let project: string;
let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
let db: Database;
let key: string;
const children: ReturnType<typeof spawn>[] = [];

/** `agentd serve` from the installed package, in the project folder. */
function serve(args: string[]): Promise<{ url: string; exit: Promise<{ code: number | null; stderr: string }> }> {
  const child = spawn(
    process.execPath,
    [join(project, "node_modules/agentd-server/bin/agentd.js"), "serve", "--port", "0", ...args],
    {
      cwd: project,
      env: { ...process.env, ...CHILD_TEST_ENV, DATABASE_URL: shared.url },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once("exit", (code) => resolve({ code, stderr })),
  );
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === "agentd is serving") resolve({ url: entry.url!, exit });
      } catch {
        // not a log line
      }
    });
    void exit.then(({ code }) => reject(Object.assign(new Error(`exited with ${code}: ${stderr}`), { stderr, code })));
  });
}

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), "agentd-user-project-"));
  const packDir = join(project, "pack");
  await mkdir(packDir);
  const tarball = await packAgentd(packDir);
  await writeFile(
    join(project, "package.json"),
    JSON.stringify({
      name: "my-agents",
      private: true,
      type: "module",
      dependencies: { "agentd-server": `file:pack/${tarball}` },
    }),
  );
  await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts"], {
    cwd: project,
    maxBuffer: 16 * 1024 * 1024,
  });
  await mkdir(join(project, "agents"));
  await writeFile(join(project, "agents/greet-v1.ts"), greet("1.0.0", "Hello"));
  await writeFile(join(project, "agents/greet-v2.ts"), greet("2.0.0", "Good day"));
  await mkdir(join(project, "bad"));
  await writeFile(
    join(project, "bad/broken.mjs"),
    `export default { name: "broken", version: "1.0.0", description: "x", inputSchema: { type: "strnig" }, outputSchema: {}, async run() { return {}; } };\n`,
  );
  await writeFile(
    join(project, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        lib: ["ES2023", "DOM"],
        types: [],
      },
      include: ["agents"],
    }),
  );
  shared = await startSharedTestDatabase();
  db = await openDatabase({ url: shared.url, dataDir: "unused", maxConnections: 1 });
  await runMigrations(db.sql);
  key = (await createApiKey(db.sql, { tenantId: "t1", scopes: [...SCOPES] })).key;
}, 600_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await db?.close();
  await shared?.close();
  if (project) await rm(project, { recursive: true, force: true });
});

describe("an agent project using the packed package", () => {
  it("type-checks against the package's declarations", async () => {
    const tsc = join(repoRoot, "node_modules/typescript/bin/tsc");
    await expect(run(process.execPath, [tsc, "-p", project])).resolves.toBeDefined();
    await writeFile(
      join(project, "agents/wrong.ts"),
      `import { defineAgent } from "agentd-server";\nexport default defineAgent<{ a: string }, { b: number }>({ name: "w", version: "1.0.0", description: "d", inputSchema: {}, outputSchema: {}, async run(input) { return { b: input.a }; } });\n`,
    );
    await expect(run(process.execPath, [tsc, "-p", project])).rejects.toMatchObject({
      stdout: expect.stringContaining("wrong.ts"),
    });
    await rm(join(project, "agents/wrong.ts"));
  });

  it("serves the project's agents, two versions at once, routed by name@version", async () => {
    const { url } = await serve(["--agents", "./agents"]);
    const client = clientsFor(url, key);
    const { agents } = await client.agents.listAgents({});
    expect(agents.filter((a) => a.name === "greet").map((a) => a.version)).toEqual(["2.0.0", "1.0.0"]);

    const latest = (await client.agents.run({ agent: "greet", input: value({ name: "Ada" }) })).task!;
    expect(latest.state).toBe(TaskState.SUCCEEDED);
    expect(latest.agentVersion).toBe("2.0.0");
    expect(plain(latest.output)).toEqual({ greeting: "Good day, Ada!", version: "2.0.0" });

    const pinned = (await client.agents.run({ agent: "greet@1.0.0", input: value({ name: "Ada" }) })).task!;
    expect(pinned).toMatchObject({ agent: "greet", agentVersion: "1.0.0" });
    expect(plain(pinned.output)).toEqual({ greeting: "Hello, Ada!", version: "1.0.0" });
    // Queued tasks run the version they were created for.
    const queued = (await client.tasks.createTask({ agent: "greet@1.0.0", input: value({ name: "Bo" }) })).task!;
    const waited = (await client.tasks.waitTask({ taskId: queued.id, timeout: { seconds: 30n } })).task!;
    expect(plain(waited.output)).toEqual({ greeting: "Hello, Bo!", version: "1.0.0" });

    const failed = (await client.agents.run({ agent: "greet", input: value({ name: "nobody" }) })).task!;
    expect(failed.error).toMatchObject({ code: "NO_ONE_TO_GREET", message: "there is nobody to greet" });
    await expect(client.agents.run({ agent: "greet@3.0.0", input: value({ name: "x" }) })).rejects.toMatchObject({
      code: 5,
    });
  });

  it("serves the agents of an installed package named in --agents", async () => {
    // An agent package as another team would publish it: plain JavaScript importing the SDK.
    const pkg = join(project, "node_modules/@acme/shouting-agents");
    await mkdir(pkg, { recursive: true });
    await writeFile(
      join(pkg, "package.json"),
      JSON.stringify({ name: "@acme/shouting-agents", version: "1.2.0", type: "module", exports: "./index.js" }),
    );
    await writeFile(
      join(pkg, "index.js"),
      `import { defineAgent } from "agentd-server";
export default defineAgent({
  name: "shout",
  version: "1.2.0",
  description: "Repeats a text in capitals.",
  inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"], additionalProperties: false },
  outputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
  async run(input) { return { text: input.text.toUpperCase() }; },
});
`,
    );
    const { url } = await serve(["--agents", "@acme/shouting-agents"]);
    const client = clientsFor(url, key);
    const task = (await client.agents.run({ agent: "shout", input: value({ text: "hello" }) })).task!;
    expect(task).toMatchObject({ state: TaskState.SUCCEEDED, agent: "shout", agentVersion: "1.2.0" });
    expect(plain(task.output)).toEqual({ text: "HELLO" });
  });

  it("refuses to start with a module whose schema is bad, naming the file", async () => {
    const failure = (await serve(["--agents", "./bad"]).catch((e: unknown) => e)) as { code?: number; stderr?: string };
    expect(failure.code).not.toBe(0);
    expect(failure.stderr).toContain(join(project, "bad/broken.mjs"));
    expect(failure.stderr).toContain("inputSchema is not a valid JSON Schema");
  });
});
