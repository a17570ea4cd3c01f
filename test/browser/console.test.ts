// The web console in a real browser (Debian's Chromium, driven by playwright-core) against a real
// agentd with the webhook outbox and a notifier: sign in, run `summarize`, create a `simulate` task
// that asks for input, answer it in the generated form and watch it finish live, see a webhook
// delivery with its attempts; tool calls and artifacts; cancel and delete; the task list's
// filters and keyboard focus; the JavaScript budget; and a refused credential leading back to sign-in.
// Screenshots go to test-results/console/ (git-ignored).
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { deflateSync, gzipSync } from "node:zlib";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/agentd/v1/auth_service_pb.js";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { DeliveryState } from "../../gen/agentd/v1/webhook_service_pb.js";
import type { AgentDefinition } from "../../services/agent/agents/agent.js";
import { CONSOLE_DIST } from "../../services/agent/server/console.js";
import { buildConsoleIfStale } from "../../services/agent/server/console-build.js";
import { repoRoot, transportFor } from "../support/agentd.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, startReceiver, startWebhookHarness, type WebhookHarness } from "../webhooks/support.js";

const CHROMIUM = "/usr/bin/chromium";
/** The issue's budget for the console's JavaScript, gzipped. */
const JS_BUDGET_BYTES = 300 * 1024;

/** A solid-colour RGB PNG of `size`×`size` pixels, for an image artifact. */
function png(size: number): Uint8Array {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (bytes: Buffer) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(size * 3, Buffer.from([0x2b, 0x6c, 0xb0]))]);
  const pixels = deflateSync(Buffer.concat(Array.from({ length: size }, () => row)));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", pixels),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** A test agent that makes tool calls (one failing), logs, and attaches every kind of artifact. */
const researcher: AgentDefinition<{ topic: string }, { found: number }> = {
  name: "researcher",
  version: "1.0.0",
  description: "Looks a topic up with tools and writes a report.",
  inputSchema: { type: "object", properties: { topic: { type: "string" } }, required: ["topic"] },
  outputSchema: { type: "object" },
  capabilities: ["tools", "artifacts"],
  async run(input, ctx) {
    const { hits } = await ctx.tool("search", { query: input.topic, limit: 3 }, async () => ({ hits: 3 }));
    await ctx
      .tool("fetch_page", { url: "https://example.invalid/page" }, async () => {
        throw new Error("host unreachable");
      })
      .catch(() => {});
    await ctx.log("info", "writing the report");
    await ctx.artifact({ name: "report.md", mimeType: "text/markdown", text: "# Findings\n\n- **three** hits" });
    await ctx.artifact({ name: "notes.txt", mimeType: "text/plain", text: "plain notes, verbatim" });
    await ctx.artifact({ name: "chart.png", mimeType: "image/png", data: png(48) });
    await ctx.artifact({ name: "data.bin", mimeType: "application/octet-stream", data: new Uint8Array([1, 2, 3, 4]) });
    return { found: hits };
  },
};
const shots = join(repoRoot, "test-results/console");

// CI installs Chromium (.ci/run); elsewhere the test is skipped when it is missing.
describe.skipIf(!existsSync(CHROMIUM) && !process.env.CI)("web console in Chromium", () => {
  let harness: WebhookHarness;
  let receiver: Receiver;
  let browser: Browser;
  let page: Page;
  const shot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    await buildConsoleIfStale();
    // The first delivery attempt fails (500), so the console shows more than one attempt.
    receiver = await startReceiver((r) => ({
      status: r.index === 0 ? 500 : 200,
      body: r.index === 0 ? "try again" : "ok",
    }));
    harness = await startWebhookHarness({ agents: [researcher as AgentDefinition] });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    page.setDefaultTimeout(15_000);
    page.on("pageerror", (err) => console.error("page error:", err));
    page.on("console", (m) => {
      if (m.type() === "error") console.error("page console:", m.text());
    });
  });

  // A failing step leaves a picture of the page behind.
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail")
      await shot(`failed-${ctx.task.name.slice(0, 40).replace(/\W+/g, "-")}`).catch(() => {});
  });

  afterAll(async () => {
    await browser?.close();
    await harness?.close();
    await receiver?.close();
  });

  it("signs in with an API key, kept out of the URL", async () => {
    const started = Date.now();
    await page.goto(harness.agentd.url);
    await page.getByLabel("API key or access token").waitFor();
    // Generous bound: the first render is well under a second on an idle machine.
    expect(Date.now() - started).toBeLessThan(10_000);
    const paint = await page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime");
    console.info(`console first contentful paint: ${Math.round(Number(paint))} ms`);
    await shot("01-sign-in");
    await page.getByLabel("API key or access token").fill(harness.agentd.key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Tasks" }).waitFor();
    expect(page.url()).not.toContain(harness.agentd.key);
    expect(await page.evaluate(() => sessionStorage.getItem("agentd.credential"))).toBe(harness.agentd.key);
  });

  it("lists agents and runs summarize synchronously from the generated form", async () => {
    await page.getByRole("link", { name: "Agents" }).click();
    await page.getByRole("link", { name: "summarize" }).waitFor();
    await shot("02a-agents");
    await page.getByRole("link", { name: "summarize" }).click();
    await page
      .getByLabel(/^text/)
      .fill("The console runs agents. It shows tasks live. It answers input requests. It lists webhook deliveries.");
    await page.getByRole("button", { name: "Run and wait" }).click();
    const result = page.locator(".result");
    await result.getByText("succeeded").waitFor();
    expect(await result.locator("pre.output").textContent()).toContain("summary");
    await shot("02-summarize-run");
  });

  it("adds a webhook endpoint", async () => {
    await page.getByRole("link", { name: "Webhooks" }).click();
    await page.getByLabel("URL").fill(receiver.url);
    await page.getByRole("button", { name: "Add endpoint" }).click();
    await page.getByText("Signing secret (shown once)").waitFor();
    await page.locator(".endpoints").getByText(receiver.url).waitFor();
  });

  it("creates a simulate task that asks for input, answers it in the generated form and watches it finish live", async () => {
    await page.goto(`${harness.agentd.url}/#/agents/simulate`);
    await page.getByRole("button", { name: "Edit as JSON" }).click();
    const input = {
      steps: 4,
      step_delay_ms: 250,
      deltas: 6,
      delta_rate: 20,
      ask: [
        {
          prompt: "Approve the plan?",
          schema: {
            type: "object",
            properties: {
              approve: { type: "boolean" },
              note: { type: "string", maxLength: 100 },
              priority: { enum: ["low", "high"] },
            },
            required: ["approve", "priority"],
          },
        },
      ],
    };
    await page.getByLabel("JSON").fill(JSON.stringify(input));
    await page.getByRole("button", { name: "Create task" }).click();
    await page.getByRole("heading", { name: "Input requested" }).waitFor();
    await page.locator(".prompt").getByText("Approve the plan?").waitFor();
    expect(await page.getByTestId("task-state").textContent()).toBe("input_required");
    await shot("03-input-requested");

    await page.getByLabel(/^approve/).check();
    await page.getByLabel(/^note/).fill("ship it");
    await page.getByLabel(/^priority/).selectOption("high");
    await page.getByRole("button", { name: "Send answer" }).click();
    // The form is gone once sent: focus is on the task's title, not lost.
    await expect.poll(() => page.evaluate("document.activeElement?.className")).toBe("task-title");
    // Live: running with progress, then streamed deltas, then succeeded — without a reload.
    await page.getByTestId("task-state").getByText("succeeded").waitFor({ timeout: 30_000 });
    await page.getByTestId("stream").getByText("d6").waitFor();
    const output = await page.getByTestId("output").textContent();
    expect(JSON.parse(output!).answers).toEqual([{ approve: true, note: "ship it", priority: "high" }]);
    await page.getByText(/Event log/).click();
    await shot("04-task-succeeded");
    await page.getByRole("link", { name: "← Tasks" }).click();
    await page.locator("table.tasks").getByText("simulate").first().waitFor();
    await shot("04a-tasks");
    await page.goBack();
    await page.getByTestId("task-state").getByText("succeeded").waitFor();

    const id = decodeURIComponent(page.url().split("#/tasks/")[1]!);
    const { task } = await harness.agentd.client.tasks.getTask({ taskId: id });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    // Reopened, the task's whole event log is replayed by WatchTask, each event once.
    await expect
      .poll(() => page.locator(".event-list li").count(), { timeout: 10_000 })
      .toBe(Number(task!.lastSequence));

    // Narrow screen: still usable (no horizontal scrolling of the page).
    await page.setViewportSize({ width: 375, height: 800 });
    expect(Number(await page.evaluate("document.documentElement.scrollWidth"))).toBeLessThanOrEqual(380);
    await shot("05-task-narrow");
    await page.setViewportSize({ width: 1200, height: 900 });
  });

  it("shows a webhook delivery with every attempt", async () => {
    await receiver.until((r) => r.length >= 2, 20_000);
    await page.getByRole("link", { name: "Webhooks" }).click();
    const delivery = page
      .getByTestId("delivery")
      .filter({ has: page.locator(".state.succeeded") })
      .filter({ hasText: "try again" })
      .first();
    await delivery.waitFor({ timeout: 20_000 });
    const rows = delivery.locator("table.attempts tbody tr");
    expect(await rows.count()).toBeGreaterThanOrEqual(2);
    expect(await rows.first().textContent()).toContain("500");
    await shot("06-webhook-deliveries");
  });

  it("retries a dead letter from the deliveries list", async () => {
    const failing = await startReceiver(() => ({ status: 503, body: "down for maintenance" }));
    try {
      const { client } = harness.agentd;
      const { endpoint } = await client.webhooks.createWebhookEndpoint({
        url: failing.url,
        eventTypes: ["task.succeeded"],
      });
      await client.agents.run({ agent: "summarize", input: value({ text: "One sentence here. Another one there." }) });
      const failed = () =>
        client.webhooks.listWebhookDeliveries({ endpointId: endpoint!.id, states: [DeliveryState.FAILED] });
      await until(failed, (r) => r.deliveries.length === 1, 20_000);
      const attemptsBefore = failing.received.length;

      await page.getByRole("link", { name: "Webhooks" }).click();
      await page.getByLabel("Endpoint").selectOption(endpoint!.id);
      await page.getByLabel("Dead letters only").check();
      const dead = page.getByTestId("delivery").filter({ has: page.locator(".state.failed") });
      await dead.getByText("down for maintenance").first().waitFor();
      await shot("06a-dead-letter");
      await dead.getByRole("button", { name: "Retry" }).click();
      // Retried: the receiver is called again and the delivery shows the new attempts.
      await failing.until((r) => r.length > attemptsBefore, 20_000);
      await page.getByLabel("Dead letters only").uncheck();
      const rows = page.getByTestId("delivery").locator("table.attempts tbody tr");
      await expect.poll(() => rows.count(), { timeout: 20_000 }).toBeGreaterThan(attemptsBefore);
    } finally {
      await failing.close();
    }
  });

  it("shows tool calls with arguments and results, logs, and artifacts: Markdown, text, image, download", async () => {
    const { task } = await harness.agentd.client.agents.run({
      agent: "researcher",
      input: value({ topic: "browsers" }),
    });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    await page.goto(`${harness.agentd.url}/#/tasks/${task!.id}`);
    await page.getByTestId("task-state").getByText("succeeded").waitFor();
    const tools = page.locator("section", { has: page.getByRole("heading", { name: "Tool calls" }) });
    const search = tools.locator("details", { hasText: "search" });
    expect(await search.locator("pre").first().textContent()).toContain('"query": "browsers"');
    expect(await search.locator("pre").nth(1).textContent()).toContain('"hits": 3');
    const failed = tools.locator("details", { hasText: "fetch_page" });
    await failed.getByText("host unreachable").waitFor();
    expect(await failed.locator(".state.failed").textContent()).toBe("error");
    await page.locator("pre.logs").getByText("[info] writing the report").waitFor();

    const artifacts = page.locator("section", { has: page.getByRole("heading", { name: "Artifacts" }) });
    // Markdown rendered, not shown as source.
    expect(await artifacts.locator(".markdown h3").textContent()).toBe("Findings");
    expect(await artifacts.locator(".markdown strong").textContent()).toBe("three");
    await artifacts.locator("pre").getByText("plain notes, verbatim").waitFor();
    const image = artifacts.getByRole("img", { name: "chart.png" });
    await expect
      .poll(() => image.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth))
      .toBe(48);
    const download = artifacts.getByRole("link", { name: "Download (4 bytes)" });
    expect(await download.getAttribute("download")).toBe("data.bin");
    const [file] = await Promise.all([page.waitForEvent("download"), download.click()]);
    expect(file.suggestedFilename()).toBe("data.bin");
    expect([...readFileSync((await file.path())!)]).toEqual([1, 2, 3, 4]);
    await shot("08-tools-and-artifacts");
  });

  it("cancels a running task and deletes it from the task view", async () => {
    const { task } = await harness.agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 600, step_delay_ms: 1000 }),
    });
    await page.goto(`${harness.agentd.url}/#/tasks/${task!.id}`);
    await page.getByTestId("task-state").getByText("running").waitFor();
    expect(await page.getByRole("button", { name: "Delete" }).isDisabled()).toBe(true);
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByTestId("task-state").getByText("canceled").waitFor();
    expect((await harness.agentd.client.tasks.getTask({ taskId: task!.id })).task?.state).toBe(TaskState.CANCELED);
    await shot("09-canceled");

    // Delete asks first: dismissing keeps the task.
    page.once("dialog", (d) => void d.dismiss());
    await page.getByRole("button", { name: "Delete" }).click();
    expect((await harness.agentd.client.tasks.getTask({ taskId: task!.id })).task?.id).toBe(task!.id);
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Delete" }).click();
    const gone = page.getByRole("status").filter({ hasText: "was deleted" });
    await gone.waitFor();
    // The button is gone with the task: keyboard focus is on the message, not lost.
    expect(
      await gone.evaluate((el) => el === (el.ownerDocument as unknown as { activeElement: unknown }).activeElement),
    ).toBe(true);
    const err = await harness.agentd.client.tasks.getTask({ taskId: task!.id }).catch((e: unknown) => e);
    expect(err instanceof ConnectError && err.code).toBe(Code.NotFound);
    await shot("10-deleted");
  });

  it("filters the task list by state, agent and labels, keeps the filters in the URL, and moves focus on navigation", async () => {
    const run = `r${Date.now().toString(36)}`;
    const { client } = harness.agentd;
    const blue = [];
    for (let i = 0; i < 2; i++)
      blue.push(
        (await client.agents.run({ agent: "simulate", input: value({ steps: 1 }), labels: { run, team: "blue" } }))
          .task!,
      );
    await client.agents.run({
      agent: "summarize",
      input: value({ text: "One sentence. Two sentences." }),
      labels: { run, team: "red" },
    });
    const waiting = (
      await client.tasks.createTask({
        agent: "simulate",
        input: value({ ask: [{ prompt: "ok?", schema: { type: "boolean" } }] }),
        labels: { run, team: "blue" },
      })
    ).task!;
    await until(
      () => client.tasks.getTask({ taskId: waiting.id }),
      (r) => r.task?.state === TaskState.INPUT_REQUIRED,
      20_000,
    );

    await page.goto(`${harness.agentd.url}/#/tasks`);
    const rows = page.locator("table.tasks tbody tr");
    const labels = page.getByLabel("Labels");
    await labels.fill(`run=${run}, team=blue`);
    await expect.poll(() => rows.count()).toBe(3);
    await expect
      .poll(() => page.url())
      .toContain(`labels=${encodeURIComponent(`run=${run}, team=blue`).replace(/%20/g, "+")}`);
    await page.getByLabel("State").selectOption("succeeded");
    await expect.poll(() => rows.count()).toBe(2);
    expect(await rows.allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining(blue[0]!.id)]));
    await page.getByLabel("State").selectOption("input_required");
    await expect.poll(() => rows.count()).toBe(1);
    await rows.getByText(waiting.id).waitFor();
    await page.getByLabel("State").selectOption("");
    await labels.fill(`run=${run}`);
    await page.getByLabel("Agent").fill("summarize");
    await expect.poll(() => rows.count()).toBe(1);
    await page.getByLabel("Agent").fill("nobody");
    await page.getByText("No tasks match these filters.").waitFor();
    await page.getByLabel("Agent").fill("simulate");
    await expect.poll(() => rows.count()).toBe(3);
    await shot("11-tasks-filtered");
    // Narrow screen: the filters wrap, the table scrolls in its own box, the page does not.
    await page.setViewportSize({ width: 375, height: 800 });
    expect(Number(await page.evaluate("document.documentElement.scrollWidth"))).toBeLessThanOrEqual(380);
    await shot("11a-tasks-narrow");
    await page.setViewportSize({ width: 1200, height: 900 });

    // A label without "=" is explained at the field, not sent.
    await labels.fill("oops");
    await page.getByText('Write labels as key=value, comma-separated (not "oops").').waitFor();
    expect(await labels.getAttribute("aria-invalid")).toBe("true");
    await labels.fill(`run=${run}`);
    await expect.poll(() => rows.count()).toBe(3);

    // By keyboard: a task link opens the task, focus moves to the new view, Back restores the filters.
    await rows.first().getByRole("link").focus();
    await page.keyboard.press("Enter");
    await page.getByTestId("task-state").waitFor();
    await expect.poll(() => page.evaluate("document.activeElement?.tagName")).toBe("MAIN");
    await page.goBack();
    await expect.poll(() => rows.count()).toBe(3);
    expect(await labels.inputValue()).toBe(`run=${run}`);
    expect(await page.getByLabel("Agent").inputValue()).toBe("simulate");
    await page.getByRole("button", { name: "Clear filters" }).click();
    expect(await labels.inputValue()).toBe("");
    await expect.poll(() => page.url()).toMatch(/#\/tasks$/);
    await client.tasks.cancelTask({ taskId: waiting.id });
  });

  it("keeps its JavaScript within ~300 KB gzipped (measured on the built bundle as served)", async () => {
    const index = readFileSync(join(CONSOLE_DIST, "index.html"), "utf8");
    const entry = /<script[^>]+src="([^"]+\.js)"/.exec(index)?.[1];
    expect(entry).toBeDefined();
    // Every JavaScript file of the build, lazily loaded chunks included.
    const files = readdirSync(join(CONSOLE_DIST, "assets")).filter((f) => f.endsWith(".js"));
    expect(files.map((f) => `/assets/${f}`)).toContain(entry);
    let gzipped = 0;
    for (const f of files) {
      const res = await fetch(`${harness.agentd.url}/assets/${f}`);
      expect(res.status).toBe(200);
      gzipped += gzipSync(Buffer.from(await res.arrayBuffer())).length;
    }
    console.info(`console JavaScript: ${files.length} file(s), ${(gzipped / 1024).toFixed(1)} KB gzipped`);
    expect(gzipped).toBeLessThanOrEqual(JS_BUDGET_BYTES);
  });

  it("a credential without the needed scope shows the code and a way to sign in again", async () => {
    const readOnly = await harness.agentd.createKey("t1", ["tasks:read"]);
    await page.getByRole("button", { name: "Sign out" }).click();
    // Keyboard users land in the credential field after signing out.
    await expect.poll(() => page.evaluate("document.activeElement?.id")).toBe("credential");
    await page.getByLabel("API key or access token").fill(readOnly);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: "Webhooks" }).click();
    await page.getByRole("alert").filter({ hasText: "PERMISSION_DENIED" }).first().waitFor();
    await shot("06b-missing-scope");
    await page.getByRole("button", { name: "Sign in again" }).first().click();
    await page.getByLabel("API key or access token").waitFor();
    await page.getByLabel("API key or access token").fill(harness.agentd.key);
    await page.getByRole("button", { name: "Sign in" }).click();
    // Back where the user was, now allowed.
    await page.getByRole("heading", { name: "Deliveries" }).waitFor();
    expect(await page.getByRole("alert").count()).toBe(0);
  });

  it("signs in with an access token limited to one task, sees only it, and on expiry is signed out with a message", async () => {
    const { client, url, key } = harness.agentd;
    const mine = (await client.tasks.createTask({ agent: "simulate", input: value({ steps: 1 }) })).task!;
    await client.tasks.createTask({ agent: "simulate", input: value({ steps: 1 }) });
    const { accessToken } = await createClient(AuthService, transportFor(url, "connect", key)).createAccessToken({
      scopes: ["tasks:read"],
      taskIds: [mine.id],
      ttl: durationFromMs(5000),
    });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API key or access token").fill(accessToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: "Tasks" }).click();
    const rows = page.locator("table.tasks tbody tr");
    await rows.getByText(mine.id).waitFor();
    expect(await rows.count()).toBe(1);
    expect(page.url()).not.toContain(accessToken);
    await shot("12-access-token");
    // The list refreshes every 2 s: once the token expires, the console signs out and says why.
    await page.getByText(/Signed out:.*UNAUTHENTICATED/).waitFor({ timeout: 30_000 });
    await page.getByLabel("API key or access token").waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("agentd.credential"))).toBeNull();
    await shot("13-token-expired");
  });

  it("a refused credential leads back to sign-in with a message, never a blank page", async () => {
    await page.evaluate(() => sessionStorage.setItem("agentd.credential", "agentd_bogus_key"));
    await page.reload();
    await page.getByText(/Signed out:.*UNAUTHENTICATED/).waitFor();
    await page.getByLabel("API key or access token").waitFor();
    await shot("07-refused-credential");
  });

  it("serves the console's files with a strict content security policy, and 404 for others", async () => {
    const res = await fetch(`${harness.agentd.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect((await fetch(`${harness.agentd.url}/assets/..%2f..%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${harness.agentd.url}/nothing-here`)).status).toBe(404);
  });
});
