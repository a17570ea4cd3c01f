// agentd from a real browser (Debian Chromium, headless): a page on another loopback origin
// calls the API with connect-web — Connect JSON, Connect binary and gRPC-Web, unary and server
// streaming — and with gRPC-Web text in hand-built frames, and reads SSE through fetch; a page
// on an unlisted origin is blocked; an access token limited to one task watches it and cannot
// read another.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { build } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { value } from "../support/json.js";
import { hasChromium, launchChromium } from "./chromium.js";
import type { Checks, Kind } from "./page-entry.js";

const KINDS: Kind[] = ["connect-json", "connect-binary", "grpc-web"];

let pages: Server;
let pagePort = 0;
let agentd: TestAgentd;
let browser: Browser;
let page: Page;

/** A static server for the page and its bundle (built here from page-entry.ts). */
async function servePage(): Promise<Server> {
  const bundle = await build({
    entryPoints: [new URL("./page-entry.ts", import.meta.url).pathname],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  const js = bundle.outputFiles[0]!.contents;
  const html =
    '<!doctype html><meta charset="utf-8"><title>loading</title><script type="module" src="/page.js"></script>';
  const server = createServer((req, res) => {
    if (req.url === "/page.js") res.writeHead(200, { "content-type": "text/javascript" }).end(js);
    else res.writeHead(200, { "content-type": "text/html" }).end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

async function openPage(origin: string): Promise<Page> {
  const p = await browser.newPage();
  await p.goto(`${origin}/`);
  await p.waitForFunction(() => (globalThis as unknown as { document: { title: string } }).document.title === "ready");
  return p;
}

type Call<K extends keyof Checks> = Parameters<Checks[K]>;
function inPage<K extends keyof Checks>(p: Page, name: K, ...args: Call<K>): Promise<Awaited<ReturnType<Checks[K]>>> {
  return p.evaluate(
    ([n, a]) =>
      (globalThis as unknown as { agentd: Record<string, (...x: unknown[]) => unknown> }).agentd[n as string]!(
        ...(a as unknown[]),
      ),
    [name, args] as const,
  ) as Promise<Awaited<ReturnType<Checks[K]>>>;
}

describe.skipIf(!hasChromium())("agentd in a real browser (Chromium)", () => {
  beforeAll(async () => {
    pages = await servePage();
    pagePort = (pages.address() as AddressInfo).port;
    agentd = await startAgentd({ config: { corsOrigins: [`http://127.0.0.1:${pagePort}`] } });
    browser = await launchChromium();
    page = await openPage(`http://127.0.0.1:${pagePort}`);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await agentd?.close();
    await new Promise((resolve) => pages?.close(resolve));
  });

  for (const kind of KINDS) {
    it(`${kind}: unary calls, with agentd's response headers readable`, async () => {
      const out = await inPage(page, "unary", kind, agentd.url, agentd.key);
      expect(out).toMatchObject({ ok: true });
      if (!out.ok) return;
      expect(out.value.agents).toContain("simulate");
      expect(out.value.state).toBe(TaskState.SUCCEEDED);
      expect(out.value.requestId).toMatch(/\S+/);
    });

    it(`${kind}: server streaming (RunStream) to the terminal event`, async () => {
      const out = await inPage(page, "runStream", kind, agentd.url, agentd.key);
      expect(out).toMatchObject({ ok: true });
      if (!out.ok) return;
      expect(out.value.events).toBeGreaterThan(2);
      expect(out.value.states.at(-1)).toBe(TaskState.SUCCEEDED);
    });
  }

  it("gRPC-Web text (Google's grpc-web wire format) with hand-built frames: unary and server streaming", async () => {
    const unary = await inPage(page, "grpcWebTextUnary", agentd.url, agentd.key);
    expect(unary).toMatchObject({ status: 200, grpcStatus: "0" });
    expect(unary.contentType).toMatch(/^application\/grpc-web-text/);
    expect(unary.agents).toContain("simulate");
    const stream = await inPage(page, "grpcWebTextStream", agentd.url, agentd.key);
    expect(stream).toMatchObject({ status: 200, grpcStatus: "0" });
    expect(stream.events).toBeGreaterThan(2);
    expect(stream.states.at(-1)).toBe(TaskState.SUCCEEDED);
    // Streamed: the events arrived in more than one piece, not as one body at the end.
    expect(stream.chunks).toBeGreaterThan(1);
    // A refused credential is a gRPC status in the text trailers, readable by the page.
    expect((await inPage(page, "grpcWebTextUnary", agentd.url, "agentd_bogus")).grpcStatus).toBe("16");
  });

  it("SSE through fetch", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 2, step_delay_ms: 20 }),
    });
    const out = await inPage(page, "sse", agentd.url, agentd.key, task!.id);
    expect(out.status).toBe(200);
    expect(out.names).toContain("state_change");
  });

  it("a task-limited access token watches its task and cannot read another", async () => {
    const mine = (
      await agentd.client.tasks.createTask({ agent: "simulate", input: value({ steps: 2, step_delay_ms: 20 }) })
    ).task!;
    const other = (await agentd.client.tasks.createTask({ agent: "simulate" })).task!;
    // The backend's part: a token for this task only, handed to the page.
    const { createClient } = await import("@connectrpc/connect");
    const { AuthService } = await import("../../gen/agentd/v1/auth_service_pb.js");
    const { transportFor } = await import("../support/agentd.js");
    const { accessToken } = await createClient(
      AuthService,
      transportFor(agentd.url, "connect", agentd.key),
    ).createAccessToken({
      scopes: ["tasks:read"],
      taskIds: [mine.id],
    });
    for (const kind of KINDS) {
      const watched = await inPage(page, "watch", kind, agentd.url, accessToken, mine.id);
      expect(watched).toMatchObject({ ok: true });
      if (watched.ok) expect(watched.value.states.at(-1)).toBe(TaskState.SUCCEEDED);
      expect(await inPage(page, "getTask", kind, agentd.url, accessToken, other.id)).toMatchObject({
        ok: false,
        code: "NotFound",
      });
      expect(await inPage(page, "watch", kind, agentd.url, accessToken, other.id)).toMatchObject({
        ok: false,
        code: "NotFound",
      });
    }
    expect((await inPage(page, "sse", agentd.url, accessToken, mine.id)).status).toBe(200);
    expect((await inPage(page, "sse", agentd.url, accessToken, other.id)).status).toBe(404);
  });

  it("a page on an origin not listed is blocked by the browser", async () => {
    // localhost and 127.0.0.1 are different origins: only the latter is allowed.
    const blocked = await openPage(`http://localhost:${pagePort}`);
    try {
      for (const kind of KINDS) {
        const out = await inPage(blocked, "unary", kind, agentd.url, agentd.key);
        expect(out.ok).toBe(false);
      }
      expect(
        (await inPage(blocked, "sse", agentd.url, agentd.key, "00000000-0000-0000-0000-000000000000")).status,
      ).toBe(0);
    } finally {
      await blocked.close();
    }
  });
});
