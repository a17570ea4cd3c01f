// `analyze-document`: known answers on public-domain texts shipped in test/agents/data/, and a
// runner killed with SIGKILL mid-document: the next attempt, in another process, starts at the
// next section without redoing or re-emitting the finished ones.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { splitSections } from "../../services/agent/agents/analyze/sections.js";
import { type AnalyzeOutput, analyzeDocumentAgent } from "../../services/agent/agents/analyze-document.js";
import { createAgentRegistry } from "../../services/agent/agents/registry.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { type AgentdProcess, clientsFor, spawnAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { plain, value } from "../support/json.js";
import { createFakeContext } from "./fake-context.js";

const data = (name: string) => readFileSync(new URL(`./data/${name}`, import.meta.url), "utf8");
const GETTYSBURG = data("gettysburg.md");
const PRIDE = data("pride-and-prejudice.txt");

async function analyze(text: string) {
  const fake = createFakeContext();
  const output = (await analyzeDocumentAgent.run({ text }, fake.ctx)) as AnalyzeOutput;
  return { output, fake };
}

describe("analyze-document (known answers)", () => {
  it("splits Markdown by headings and plain text by paragraphs", () => {
    expect(splitSections(GETTYSBURG).map((s) => [s.level, s.heading])).toEqual([
      [1, "The Gettysburg Address"],
      [2, "The founding"],
      [2, "The war"],
      [2, "The dedication"],
    ]);
    expect(splitSections(PRIDE).map((s) => s.heading)).toEqual([1, 2, 3, 4, 5, 6, 7].map((i) => `Paragraph ${i}`));
  });

  it("analyzes the Gettysburg Address", async () => {
    const { output, fake } = await analyze(GETTYSBURG);
    expect(output.title).toBe("The Gettysburg Address");
    expect(output.keywords[0]?.term).toBe("nation");
    expect(output.keywords.map((k) => k.term)).toContain("dead");
    expect(output.entities.people).toEqual(["Abraham Lincoln"]);
    expect(output.entities.places).toContain("Pennsylvania");
    expect(output.entities.dates.join(" ")).toContain("November 19");
    expect(output.sections[2]?.keywords.slice(0, 2)).toEqual(["war", "nation"]);
    // 292 words in 16 sentences, short words: "fairly easy" on Flesch's scale.
    expect(output.readability).toMatchObject({ words: 292, level: "fairly easy" });
    expect(output.readability.flesch_reading_ease).toBeGreaterThan(60);
    expect(output.readability.flesch_reading_ease).toBeLessThan(80);
    expect(output.structure).toMatchObject({ sections: 4, headings: 4 });
    expect(output.sections.every((s) => s.summary.length > 0)).toBe(true);
    expect(fake.checkpoints).toHaveLength(4);
    const report = fake.artifacts[0]!;
    expect(report).toMatchObject({ name: "report.md", mimeType: "text/markdown" });
    for (const s of output.sections) expect(report.text).toContain(`### ${s.index + 1}. ${s.heading}`);
  });

  it("finds the people and places of Pride and Prejudice's opening, and the sentiment of its paragraphs", async () => {
    const { output } = await analyze(PRIDE);
    expect(output.entities.people).toEqual(["Mr. Bennet", "Mrs. Long", "Mr. Morris"]);
    expect(output.entities.places).toEqual(["Netherfield Park", "England"]);
    expect(output.entities.dates).toEqual(["Monday"]);
    expect(output.sections[0]?.sentiment.label).toBe("positive"); // "a truth universally acknowledged … good fortune"
    expect(output.sections[5]?.sentiment.label).toBe("negative"); // "cried his wife impatiently … no objection"
    expect(output.keywords.map((k) => k.term)).toContain("bennet");
  });

  it("refuses a text of only whitespace as invalid input", () => {
    const registry = createAgentRegistry([analyzeDocumentAgent]);
    expect(registry.validateInput("analyze-document", { text: " \n\n\t " }).map((v) => v.field)).toEqual([
      "input.text",
    ]);
    expect(registry.validateInput("analyze-document", { text: "\n\nWords." })).toEqual([]);
  });

  it("resumes from a checkpoint without redoing finished sections", async () => {
    const first = await analyze(GETTYSBURG);
    const saved = JSON.parse(JSON.stringify({ done: first.output.sections.slice(0, 2) }));
    const fake = createFakeContext({ savedState: saved, attempt: 2 });
    const output = (await analyzeDocumentAgent.run({ text: GETTYSBURG }, fake.ctx)) as AnalyzeOutput;
    expect(fake.progress.map((p) => p.step)).toEqual([3, 4, 5]);
    expect(fake.logs[0]?.message).toBe("resuming at section 3 of 4");
    expect(output).toEqual(first.output);
  });
});

describe("analyze-document across a killed runner", () => {
  let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
  let db: Database;
  let key: string;
  const processes: AgentdProcess[] = [];

  beforeAll(async () => {
    shared = await startSharedTestDatabase();
    db = await openDatabase({ url: shared.url, dataDir: "unused", maxConnections: 1 });
    await runMigrations(db.sql);
    key = (await createApiKey(db.sql, { tenantId: "t1", scopes: [...SCOPES] })).key;
  });
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill("SIGKILL")));
    await db?.close();
    await shared?.close();
  });

  it("SIGKILL after section 2: the next attempt starts at section 3 and the report is complete", async () => {
    const a = await spawnAgentd({ databaseUrl: shared.url });
    processes.push(a);
    const clientA = clientsFor(a.url, key);
    const { task } = await clientA.tasks.createTask({
      agent: "analyze-document",
      input: value({ text: GETTYSBURG, pace_ms: 2000 }),
    });
    const abort = new AbortController();
    try {
      for await (const res of clientA.tasks.watchTask({ taskId: task!.id }, { signal: abort.signal })) {
        if (res.event?.event.case === "progress" && res.event.event.value.step === 2) break;
      }
    } finally {
      abort.abort();
    }
    await a.kill("SIGKILL");

    const b = await spawnAgentd({ databaseUrl: shared.url });
    processes.push(b);
    const clientB = clientsFor(b.url, key);
    let done = (await clientB.tasks.getTask({ taskId: task!.id })).task!;
    for (const deadline = Date.now() + 45_000; done.state !== TaskState.SUCCEEDED && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 200));
      done = (await clientB.tasks.getTask({ taskId: task!.id })).task!;
    }
    const { events } = await clientB.tasks.listTaskEvents({ taskId: task!.id, pageSize: 1000 });
    const trace = JSON.stringify(
      events.map((e) => [
        e.event.case,
        (e.event.value as { step?: number; message?: string }).step ?? (e.event.value as { message?: string }).message,
      ]),
    );
    expect(done.state).toBe(TaskState.SUCCEEDED);
    // At least one more attempt after the kill (a loaded machine may lose a lease more often).
    expect(done.attempt).toBeGreaterThanOrEqual(2);
    const steps = events.flatMap((e) => (e.event.case === "progress" ? [e.event.value.step] : []));
    // Every section reported exactly once, in order, across the attempts; then the report step.
    expect(steps, trace).toEqual([1, 2, 3, 4, 5]);
    // The attempt that ran after the kill (the last RUNNING) started at section 3.
    const lastRunning = events.findLastIndex(
      (e) => e.event.case === "stateChange" && e.event.value.state === TaskState.RUNNING,
    );
    const resumed = events.findIndex(
      (e) => e.event.case === "log" && e.event.value.message === "resuming at section 3 of 4",
    );
    const progress3 = events.findIndex((e) => e.event.case === "progress" && e.event.value.step === 3);
    expect(resumed, trace).toBe(lastRunning + 1);
    expect(progress3, trace).toBeGreaterThan(resumed);

    const output = plain<AnalyzeOutput>(done.output);
    expect(output.sections.map((s) => s.heading)).toEqual([
      "The Gettysburg Address",
      "The founding",
      "The war",
      "The dedication",
    ]);
    const report = done.artifacts.find((x) => x.name === "report.md");
    expect(done.artifacts.filter((x) => x.name === "report.md")).toHaveLength(1);
    const text = report?.content.case === "text" ? report.content.value : "";
    for (const heading of ["1. The Gettysburg Address", "2. The founding", "3. The war", "4. The dedication"])
      expect(text).toContain(heading);
    await b.kill("SIGTERM");
  }, 180_000);
});
