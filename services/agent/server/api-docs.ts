// GET /openapi.json (the document generated from proto/ by our protoc plugin,
// gen/openapi) and GET /docs, an API reference page rendered by Swagger UI
// (swagger-ui-dist), served from this port: no CDN. Public, like health checks:
// the document describes the API, it holds no data.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { NodeHandlerFn } from "./one-port.js";

type NodeRequest = Parameters<NodeHandlerFn>[0];
type NodeResponse = Parameters<NodeHandlerFn>[1];

const OPENAPI_FILE = new URL("../../../gen/openapi/agentd.openapi.json", import.meta.url);

/** The Swagger UI files the page needs, by the path they are served at. */
const ASSETS: Record<string, { file: string; type: string }> = {
  "/docs/swagger-ui.css": { file: "swagger-ui.css", type: "text/css; charset=utf-8" },
  "/docs/swagger-ui-bundle.js": { file: "swagger-ui-bundle.js", type: "text/javascript; charset=utf-8" },
  "/docs/swagger-ui-standalone-preset.js": {
    file: "swagger-ui-standalone-preset.js",
    type: "text/javascript; charset=utf-8",
  },
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>agentd API reference</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// A file of its own rather than an inline script, so a strict Content-Security-Policy holds.
const INIT = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout",
  deepLinking: true,
});
`;

export interface ApiDocs {
  /** Serves the request when it is one of ours; false otherwise. */
  handleHttp(req: NodeRequest, res: NodeResponse): boolean;
}

export function createApiDocs(): ApiDocs {
  const assetDir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
  const cache = new Map<string, Promise<Buffer>>();
  const load = (key: string, read: () => Promise<Buffer>) => {
    let body = cache.get(key);
    if (!body) {
      body = read();
      cache.set(key, body);
      body.catch(() => cache.delete(key));
    }
    return body;
  };
  const send = (
    res: NodeResponse,
    type: string,
    body: Promise<Buffer> | Buffer,
    headers: Record<string, string> = {},
  ) => {
    Promise.resolve(body).then(
      (b) => {
        res.writeHead(200, {
          "content-type": type,
          "content-length": String(b.length),
          "x-content-type-options": "nosniff",
          ...headers,
        });
        res.end(b);
      },
      () => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("not available\n");
      },
    );
  };

  return {
    handleHttp(req, res) {
      if (req.method !== "GET" && req.method !== "HEAD") return false;
      const path = (req.url ?? "").split("?", 1)[0] ?? "";
      if (path === "/openapi.json") {
        send(
          res,
          "application/json",
          load(path, () => readFile(OPENAPI_FILE)),
          { "access-control-allow-origin": "*" },
        );
        return true;
      }
      if (path === "/docs" || path === "/docs/") {
        send(res, "text/html; charset=utf-8", Buffer.from(PAGE));
        return true;
      }
      if (path === "/docs/init.js") {
        send(res, "text/javascript; charset=utf-8", Buffer.from(INIT));
        return true;
      }
      const asset = path ? ASSETS[path] : undefined;
      if (asset) {
        send(
          res,
          asset.type,
          load(path, () => readFile(join(assetDir, asset.file))),
          { "cache-control": "public, max-age=3600" },
        );
        return true;
      }
      return false;
    },
  };
}
