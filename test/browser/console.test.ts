// The web console in a real browser (Debian's Chromium, driven by playwright-core) against a real
// agentd with the webhook outbox and a notifier: sign in, run `summarize`, create a `simulate` task
// that asks for input, answer it in the generated form and watch it finish live, see a webhook
// delivery with its attempts, and a refused credential leading back to sign-in.
// Screenshots go to test-results/console/ (git-ignored).
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { DeliveryState } from "../../gen/agentd/v1/webhook_service_pb.js";
import { buildConsoleIfStale } from "../../services/agent/server/console-build.js";
import { repoRoot } from "../support/agentd.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, startReceiver, startWebhookHarness, type WebhookHarness } from "../webhooks/support.js";

const CHROMIUM = "/usr/bin/chromium";
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
    harness = await startWebhookHarness();
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

  it("a credential without the needed scope shows the code and a way to sign in again", async () => {
    const readOnly = await harness.agentd.createKey("t1", ["tasks:read"]);
    await page.getByRole("button", { name: "Sign out" }).click();
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
