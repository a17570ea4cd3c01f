// examples/clients/browser run for real: agentd allows the backend's loopback origin (CORS), the
// backend (a tsx child process) mints a task-limited access token, and headless Chromium opens
// its page, which watches the task with the typed client over Connect-Web.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasChromium, launchChromium } from "../browser/chromium.js";
import { repoRoot, startAgentd, type TestAgentd } from "../support/agentd.js";
import { freePort } from "../support/free-port.js";

let agentd: TestAgentd;
let backend: ChildProcess;
let browser: Browser;
let page = "";

/** Starts backend.ts and resolves with the line it prints once it listens. */
function startBackend(port: number): Promise<{ page: string; taskId: string }> {
  backend = spawn(process.execPath, ["--import", "tsx", "examples/clients/browser/backend.ts"], {
    cwd: repoRoot,
    env: { ...process.env, AGENTD_URL: agentd.url, AGENTD_API_KEY: agentd.key, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  backend.stderr!.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    createInterface({ input: backend.stdout! }).once("line", (line) => resolve(JSON.parse(line)));
    backend.once("exit", (code) => reject(new Error(`backend exited with ${code}: ${stderr}`)));
  });
}

describe.skipIf(!hasChromium())("examples/clients/browser (Chromium)", () => {
  beforeAll(async () => {
    const port = await freePort();
    agentd = await startAgentd({ config: { corsOrigins: [`http://127.0.0.1:${port}`] } });
    page = (await startBackend(port)).page;
    browser = await launchChromium();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    if (backend && backend.exitCode === null) {
      const exited = new Promise((resolve) => backend.once("exit", resolve));
      backend.kill("SIGTERM");
      await exited;
    }
    await agentd?.close();
  });

  it("the page watches its task to SUCCEEDED with a token that cannot read another task", {
    timeout: 120_000,
  }, async () => {
    const tab = await browser.newPage();
    await tab.goto(page);
    const text = (id: string) => tab.locator(`#${id}`).textContent({ timeout: 60_000 });
    await tab.locator("#other").filter({ hasNotText: "…" }).waitFor({ timeout: 60_000 });
    expect(await text("state")).toBe("SUCCEEDED");
    expect(await text("other")).toMatch(/^NOT_FOUND/);
    const events = await tab.locator("#events li").allTextContents();
    expect(events[0]).toMatch(/^#1 state /);
    expect(events.at(-1)).toMatch(/state SUCCEEDED$/);
    expect(events.filter((e) => / progress \d+\/3$/.test(e)).length).toBeGreaterThan(0);
    // Deltas may be coalesced into fewer events; their text is the same.
    expect(events.filter((e) => / delta /.test(e)).length).toBeGreaterThan(0);
    expect(await text("output")).toBe("d1 d2 d3 d4 ");
  });
});
