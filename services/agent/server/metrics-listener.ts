// GET /metrics on a port of its own (AGENTD_METRICS_PORT), so that the scrape
// endpoint can stay off the public port. Serves only /metrics, plain HTTP.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { NodeHandlerFn } from "./one-port.js";

type Request = Parameters<NodeHandlerFn>[0];
type Response = Parameters<NodeHandlerFn>[1];

export interface MetricsListener {
  url: string;
  close(): Promise<void>;
}

export function isMetricsRequest(req: { url?: string | undefined }): boolean {
  return (req.url ?? "").split("?", 1)[0] === "/metrics";
}

/** Listens on host:port and hands GET /metrics to `serve` (what the main port would have answered). */
export async function listenMetrics(opts: {
  host: string;
  port: number;
  serve: (req: Request, res: Response) => boolean;
}): Promise<MetricsListener> {
  const server = createServer((req, res) => {
    if (req.method === "GET" && isMetricsRequest(req) && opts.serve(req, res)) return;
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host =
    opts.host === "0.0.0.0" || opts.host === "" ? "127.0.0.1" : opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
