// Serving embedded.ts's one PGlite session to many wire-protocol connections.
//
// @electric-sql/pglite-socket (0.2.17) lets many clients share the session, but
// its multiplexer interleaves them message by message:
// outside an explicit transaction (BEGIN) it runs the next queued wire message
// of ANY connection, so one client's Parse/Bind/Execute/Sync cycle can be split
// by another's. With concurrent clients we saw `portal "" does not exist`, and
// with 3+ clients running transactions the server stopped answering (a client's
// message was swallowed while the session was discarding until another
// client's Sync). Its connection limit defaults to 1, and a refused client gets
// plain text, not a protocol error. The fix belongs in its query queue, which it
// does not export, so this module serves PGlite itself with the same primitive
// pglite-socket uses (`execProtocolRawStream` under `runExclusive`) and lends the
// session to one connection per whole cycle: from its first message until
// PGlite answers ReadyForQuery "idle" (after Sync or a simple query, and only
// once any transaction has ended). Many clients, even in other processes, are
// then safe; they take turns, as if the database had one connection.
//
// What is still shared between clients, because it lives in the one session:
// session settings (SET), named prepared statements, LISTEN (NOTIFY does not
// reach other clients: use the in-process wake-up bus), and advisory locks
// (every client holds them at once, so they exclude nothing). Transactions
// exclude each other completely.
import { createServer, type Socket } from "node:net";
import type { PGlite } from "@electric-sql/pglite";
import { toError } from "../errors.js";
import type { Logger } from "../log.js";

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const READY_FOR_QUERY = 0x5a; // 'Z'
const TERMINATE = 0x58; // 'X'
const SYNC = Buffer.from([0x53, 0, 0, 0, 4]); // 'S'
const ROLLBACK = simpleQuery("ROLLBACK");

function simpleQuery(text: string): Buffer {
  const body = Buffer.from(`${text}\0`);
  const header = Buffer.alloc(5);
  header[0] = 0x51; // 'Q'
  header.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}

interface Client {
  readonly id: number;
  readonly socket: Socket;
  input: Buffer;
  started: boolean;
  readonly messages: Buffer[];
  closed: boolean;
  /** The running message loop, if any; close() waits for it. */
  pumping: Promise<void> | undefined;
}

export function serveSession(db: PGlite, logger: Logger) {
  const clients = new Set<Client>();
  const session = createSessionLease<Client>();
  let nextId = 1;

  async function execute(message: Uint8Array, client: Client | undefined): Promise<string | undefined> {
    const ready = new ReadyScanner();
    await db.runExclusive(() =>
      db.execProtocolRawStream(message, {
        onRawData: (data) => {
          // PGlite reuses the memory behind `data`: copy before it leaves.
          const copy = Buffer.from(data);
          ready.push(copy);
          if (client && !client.closed && client.socket.writable) client.socket.write(copy);
        },
      }),
    );
    return ready.status;
  }

  async function pump(client: Client): Promise<void> {
    while (client.messages.length > 0 && !client.closed) {
      await session.acquire(client);
      if (client.closed) break;
      const message = client.messages.shift()!;
      // "I": idle, outside any transaction: a safe point to let another client in.
      if ((await execute(message, client)) === "I") session.release(client);
    }
    if (client.closed) await cleanUp(client);
  }

  // A client that leaves while it holds the session (mid-cycle or inside a
  // transaction) must not leave the session half-used for the next one.
  async function cleanUp(client: Client): Promise<void> {
    if (session.holder() !== client) return;
    try {
      await execute(SYNC, undefined);
      if (db.isInTransaction()) await execute(ROLLBACK, undefined);
    } catch (error) {
      logger.warn({ err: toError(error), client: client.id }, "embedded database: cleanup after a client left failed");
    } finally {
      session.release(client);
    }
  }

  function run(client: Client): void {
    client.pumping ??= pump(client)
      .catch((error: unknown) => {
        logger.warn({ err: toError(error), client: client.id }, "embedded database: client connection failed");
        client.socket.destroy();
        client.closed = true;
        return cleanUp(client);
      })
      .finally(() => {
        client.pumping = undefined;
        // Messages may have arrived, or the client left, while the loop ended.
        if ((!client.closed && client.messages.length > 0) || (client.closed && session.holder() === client))
          run(client);
      });
  }

  function onData(client: Client, chunk: Buffer): void {
    if (client.closed) return;
    client.input = client.input.length === 0 ? chunk : Buffer.concat([client.input, chunk]);
    for (;;) {
      const message = takeMessage(client);
      if (message === undefined) break;
      if (message === "close") {
        client.socket.destroy(); // "close" follows, which cleans up
        break;
      }
      if (message !== "handled") client.messages.push(message);
    }
    if (client.messages.length > 0) run(client);
  }

  function onClose(client: Client): void {
    if (client.closed && !clients.has(client)) return;
    client.closed = true;
    clients.delete(client);
    client.messages.length = 0;
    session.forget(client);
    if (session.holder() === client) run(client);
  }

  const server = createServer((socket) => {
    socket.setNoDelay(true);
    const client: Client = {
      id: nextId++,
      socket,
      input: Buffer.alloc(0),
      started: false,
      messages: [],
      closed: false,
      pumping: undefined,
    };
    clients.add(client);
    socket.on("data", (chunk: Buffer) => onData(client, chunk));
    socket.on("error", () => {}); // "close" follows; resets from clients are normal
    socket.on("close", () => onClose(client));
  });

  return {
    server,
    async close(): Promise<void> {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      const all = [...clients];
      for (const client of all) client.socket.destroy();
      for (const client of all) onClose(client);
      // Wait until no client is mid-statement, so PGlite closes on a quiet session.
      while (all.some((c) => c.pumping)) await Promise.all(all.map((c) => c.pumping));
      await stopped;
    },
  };
}

// One complete frontend message off the input, or undefined when more bytes are needed.
function takeMessage(client: Client): Buffer | "handled" | "close" | undefined {
  const input = client.input;
  if (!client.started) {
    if (input.length < 8) return undefined;
    const length = input.readInt32BE(0);
    const code = input.readInt32BE(4);
    if (length < 8 || length > 10_000) return "close";
    if (input.length < length) return undefined;
    client.input = input.subarray(length);
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
      client.socket.write("N"); // no encryption on loopback; the client goes on in plain text
      return "handled";
    }
    // PGlite has no other backend to signal; like Postgres, close without a reply.
    if (code === CANCEL_REQUEST) return "close";
    client.started = true;
    return input.subarray(0, length); // the StartupMessage: PGlite answers it
  }
  if (input.length < 5) return undefined;
  const total = 1 + input.readInt32BE(1);
  if (total < 5) return "close";
  if (input.length < total) return undefined;
  client.input = input.subarray(total);
  if (input[0] === TERMINATE) return "close";
  return input.subarray(0, total);
}

/** The session is lent to one holder at a time; the others wait in line (FIFO). */
function createSessionLease<T>() {
  let holder: T | undefined;
  const waiting: Array<{ who: T; grant: () => void }> = [];
  return {
    holder: () => holder,
    acquire(who: T): Promise<void> | void {
      if (holder === who) return;
      if (holder === undefined) {
        holder = who;
        return;
      }
      return new Promise<void>((grant) => waiting.push({ who, grant }));
    },
    release(who: T): void {
      if (holder !== who) return;
      const next = waiting.shift();
      holder = next?.who;
      next?.grant();
    },
    /** Drops `who` from the line; its pending acquire resolves so its loop can end. */
    forget(who: T): void {
      const index = waiting.findIndex((w) => w.who === who);
      if (index >= 0) waiting.splice(index, 1)[0]!.grant();
    },
  };
}

/** Follows backend messages across chunks and remembers the status byte of the
 * last ReadyForQuery: "I" idle, "T" in a transaction, "E" in a failed one. */
class ReadyScanner {
  status: string | undefined;
  private carry: Buffer = Buffer.alloc(0);
  private skip = 0;

  push(chunk: Buffer): void {
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    let i = 0;
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - i);
        i += n;
        this.skip -= n;
        if (this.skip > 0) break;
      }
      if (buf.length - i < 5) break;
      const end = i + 1 + buf.readInt32BE(i + 1);
      if (buf[i] === READY_FOR_QUERY) {
        if (buf.length < end) break;
        this.status = String.fromCharCode(buf[end - 1]!);
        i = end;
        continue;
      }
      if (end <= buf.length) i = end;
      else {
        this.skip = end - buf.length;
        i = buf.length;
      }
    }
    this.carry = Buffer.from(buf.subarray(i));
  }
}
