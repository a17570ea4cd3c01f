// A TCP proxy in front of Postgres that counts the statements its clients send:
// each simple Query ('Q') and each extended-protocol Execute ('E') message is
// one. It reads the wire protocol instead of asking Postgres (pg_stat_statements
// needs a server restart to load), so it counts exactly one process's load.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface StatementCounter {
  /** postgres:// URL of the proxy, for the process to be measured. */
  url: string;
  /** Statements sent through the proxy so far. */
  count(): number;
  /** The statements' first words so far (e.g. "SELECT pg_notify"), counted; for reports. */
  texts(): Map<string, number>;
  close(): Promise<void>;
}

/** Splits the client's byte stream into protocol messages and counts Q and E. */
function meter(onStatement: (text: string) => void) {
  let buffer = Buffer.alloc(0);
  let started = false; // the startup (or SSL/GSS request) message has no type byte
  const parsed = new Map<string, string>(); // prepared statements by name
  let bound = "";
  return (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      if (!started) {
        if (buffer.length < 8) return;
        const length = buffer.readInt32BE(0);
        if (buffer.length < length) return;
        const code = buffer.readInt32BE(4);
        buffer = buffer.subarray(length);
        // SSLRequest / GSSENCRequest are followed by another startup message.
        if (code !== 80877103 && code !== 80877104) started = true;
        continue;
      }
      if (buffer.length < 5) return;
      const length = buffer.readInt32BE(1);
      if (buffer.length < 1 + length) return;
      const type = String.fromCharCode(buffer[0]!);
      const body = buffer.subarray(5, 1 + length);
      if (type === "P") {
        // Parse: statement name\0 query\0 …
        const nameEnd = body.indexOf(0);
        parsed.set(
          body.subarray(0, nameEnd).toString(),
          body.subarray(nameEnd + 1, body.indexOf(0, nameEnd + 1)).toString(),
        );
      }
      if (type === "B") {
        // Bind: portal name\0 statement name\0 …
        const portalEnd = body.indexOf(0);
        bound = parsed.get(body.subarray(portalEnd + 1, body.indexOf(0, portalEnd + 1)).toString()) ?? "";
      }
      if (type === "Q") onStatement(body.subarray(0, body.indexOf(0)).toString());
      if (type === "E") onStatement(bound);
      buffer = buffer.subarray(1 + length);
    }
  };
}

export async function startStatementCounter(targetUrl: string): Promise<StatementCounter> {
  const target = new URL(targetUrl);
  let statements = 0;
  const texts = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    const count = meter((text) => {
      statements++;
      const head = text.trim().replace(/\s+/g, " ").slice(0, 40);
      texts.set(head, (texts.get(head) ?? 0) + 1);
    });
    client.on("data", (chunk: Buffer) => {
      count(chunk);
      upstream.write(chunk);
    });
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const url = new URL(targetUrl);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.toString(),
    count: () => statements,
    texts: () => new Map(texts),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
