// The web console's static files (services/agent/server/console.ts) served from a build folder
// over a real HTTP server on a loopback port: real files are served and cached, and any number of
// distinct made-up paths answer 404 without growing the cache (issue 7: nothing a client sends may
// grow memory without bound).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConsoleSite, createConsoleSite } from "../../services/agent/server/console.js";

/** GET of a path exactly as written (fetch would normalize `..` and percent-encoding away). */
function statusOfRawPath(base: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/`, { path, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("console static files", () => {
  let root: string;
  let site: ConsoleSite;
  let server: Server;
  let url: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "agentd-console-"));
    mkdirSync(join(root, "assets"));
    writeFileSync(join(root, "index.html"), "<!doctype html><title>console</title>");
    writeFileSync(join(root, "assets", "app-1234.js"), "console.log(1)");
    writeFileSync(join(root, "favicon.svg"), "<svg/>");
    site = createConsoleSite({ root });
    server = createServer((req, res) => {
      if (site.handle(req, res)) return;
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(root, { recursive: true, force: true });
  });

  it("serves the build's files with their types", async () => {
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(await page.text()).toContain("<title>console</title>");
    const asset = await fetch(`${url}/assets/app-1234.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("content-type")).toContain("text/javascript");
    expect(asset.headers.get("cache-control")).toContain("immutable");
    expect(await asset.text()).toBe("console.log(1)");
    const head = await fetch(`${url}/favicon.svg`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(site.cachedFiles()).toBe(3);
  });

  it("answers many distinct made-up paths with 404 and caches none of them", { timeout: 60_000 }, async () => {
    await fetch(`${url}/`).then((r) => r.text());
    const before = site.cachedFiles();
    const made = Array.from({ length: 2_000 }, (_, i) => [
      `/assets/made-up-${i}.js`,
      `/assets/${i}/../../index.html`,
      `/assets/app-1234.js.${i}`,
      `/assets/%2e%2e/%2e%2e/${i}/etc/passwd`,
      `/assets/app-1234.js?v=${i}`,
    ]).flat();
    for (let i = 0; i < made.length; i += 100) {
      const answers = await Promise.all(
        made.slice(i, i + 100).map(async (path) => [path, await statusOfRawPath(url, path)] as const),
      );
      // A query string does not make a different file: the real asset, from the same cache entry.
      for (const [path, status] of answers) expect(status, path).toBe(path.includes("?v=") ? 200 : 404);
    }
    expect(site.cachedFiles()).toBe(before);
    expect(site.cachedFiles()).toBeLessThanOrEqual(3);
    // Still serving the real files afterwards.
    expect((await fetch(`${url}/assets/app-1234.js`)).status).toBe(200);
  });

  it("a file that goes away is not served from a remembered failure forever", async () => {
    const fresh = createConsoleSite({ root });
    const probe = createServer((req, res) => {
      if (fresh.handle(req, res)) return;
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    try {
      // Listed while present, read after it was removed: an error answer, and no cache entry left.
      writeFileSync(join(root, "assets", "gone.js"), "x");
      expect((await fetch(`${probeUrl}/`)).status).toBe(200);
      rmSync(join(root, "assets", "gone.js"));
      const gone = await fetch(`${probeUrl}/assets/gone.js`);
      await gone.arrayBuffer();
      expect(gone.status).toBeGreaterThanOrEqual(400);
      expect(fresh.cachedFiles()).toBe(1);
    } finally {
      probe.closeAllConnections();
      await new Promise((resolve) => probe.close(resolve));
    }
  });
});
