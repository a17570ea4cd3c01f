// The web console (web/console), served same-origin at GET / from its Vite build in dist/console.
// Only files of the build are served: the path is looked up in the folder's listing, read once,
// never joined from request text. Without a build, / answers a short page saying how to make one.
// Only files of the listing are ever cached, so the cache is bounded by the build's size however
// many distinct made-up paths clients ask for.
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import type { NodeHandlerFn } from "./one-port.js";

type Request = Parameters<NodeHandlerFn>[0];
type Response = Parameters<NodeHandlerFn>[1];

export interface ConsoleSite {
  /** Serves GET/HEAD of / and the build's files; false for any other request. */
  handle(req: Request, res: Response): boolean;
  /** How many files are held in memory (at most the build's file count). */
  cachedFiles(): number;
}

/** Where `npm run build:console` writes the console. */
export const CONSOLE_DIST = new URL("../../../dist/console/", import.meta.url).pathname;

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  json: "application/json",
  txt: "text/plain; charset=utf-8",
};

// The console talks only to this origin; artifacts' images are data: URLs, Markdown is sanitized.
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>agentd console</title>
<p>The agentd web console is not built. Run <code>npm run build:console</code> (npm ci does it) and reload.</p>`;

interface File {
  body: Buffer;
  type: string;
}

async function listFiles(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (!e.isFile()) continue;
    const full = join(e.parentPath, e.name);
    files.set(`/${relative(root, full).split("\\").join("/")}`, full);
  }
  return files;
}

export function createConsoleSite(opts: { root?: string } = {}): ConsoleSite {
  const root = opts.root ?? CONSOLE_DIST;
  // Listed on first request, then cached: a rebuild while the server runs is seen after a restart.
  let listing: Promise<Map<string, string>> | undefined;
  const cache = new Map<string, Promise<File | undefined>>();

  const load = async (path: string): Promise<File | undefined> => {
    listing ??= listFiles(root).catch(() => new Map());
    const full = (await listing).get(path);
    // A path that is not a file of the build is answered without a trace: no cache entry.
    if (!full) return undefined;
    let file = cache.get(path);
    if (!file) {
      const ext = path.slice(path.lastIndexOf(".") + 1);
      file = readFile(full).then((body) => ({ body, type: TYPES[ext] ?? "application/octet-stream" }));
      // A read that failed (the file went away) is tried again next time, not remembered.
      file.catch(() => cache.delete(path));
      cache.set(path, file);
    }
    return file;
  };

  return {
    handle(req, res) {
      if (req.method !== "GET" && req.method !== "HEAD") return false;
      const path = (req.url ?? "/").split("?")[0]!;
      const isIndex = path === "/" || path === "/index.html";
      if (!isIndex && !path.startsWith("/assets/") && path !== "/favicon.svg") return false;
      load(isIndex ? "/index.html" : path).then(
        (file) => {
          if (!file) {
            if (isIndex) {
              res.writeHead(503, { "content-type": TYPES.html!, "cache-control": "no-store", ...SECURITY_HEADERS });
              res.end(NOT_BUILT);
            } else {
              res.writeHead(404, { "cache-control": "no-store" });
              res.end();
            }
            return;
          }
          res.writeHead(200, {
            "content-type": file.type,
            "content-length": String(file.body.length),
            // Vite names assets by content hash: they never change; the page itself always revalidates.
            "cache-control": isIndex ? "no-cache" : "public, max-age=31536000, immutable",
            ...SECURITY_HEADERS,
          });
          if (req.method === "HEAD") res.end();
          else res.end(file.body);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return true;
    },
    cachedFiles: () => cache.size,
  };
}
