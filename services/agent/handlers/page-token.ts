// Opaque, tamper-evident page tokens: a cursor, a hash of the query it belongs to
// (a token reused with other filters is refused instead of silently skipping rows),
// and an HMAC-SHA256 over both with a key every replica of the deployment shares
// (made once at migration time, table deployment_secrets). A client can neither
// read meaning into a token nor forge one; every decoded cursor is still checked
// before it reaches SQL. Anything wrong with a token is INVALID_ARGUMENT.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { Sql } from "../../shared/db/database.js";
import { invalidArgument } from "../../shared/errors.js";

/** Longer tokens are refused unread; the ones issued here are ~150 characters. */
const MAX_TOKEN_LENGTH = 1024;
const VERSION = 2;

interface Payload {
  v: number;
  c: string;
  q: string;
}

export interface PageTokens {
  encode(cursor: string, query: unknown): Promise<string>;
  /** The cursor in `token`, or null for the first page. INVALID_ARGUMENT when forged, malformed,
   * from another query, or when its cursor fails `isCursor`. */
  decode(token: string, query: unknown, isCursor: (cursor: string) => boolean): Promise<string | null>;
}

function queryHash(query: unknown): string {
  return createHash("sha256").update(JSON.stringify(query)).digest("base64url").slice(0, 16);
}

function bad(why: string) {
  return invalidArgument(
    [{ field: "page_token", description: why, reason: "INVALID_PAGE_TOKEN" }],
    "INVALID_PAGE_TOKEN",
  );
}

export function createPageTokens(key: () => Promise<Buffer>): PageTokens {
  const mac = (secret: Buffer, body: string) =>
    createHmac("sha256", secret).update(`agentd page token\n${body}`).digest();
  return {
    async encode(cursor, query) {
      const payload: Payload = { v: VERSION, c: cursor, q: queryHash(query) };
      const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
      return `${body}.${mac(await key(), body).toString("base64url")}`;
    },

    async decode(token, query, isCursor) {
      if (token === "") return null;
      const notOurs = () => bad("is not a token this server issued");
      if (token.length > MAX_TOKEN_LENGTH) throw notOurs();
      const [body, signature, extra] = token.split(".");
      if (!body || !signature || extra !== undefined) throw notOurs();
      const expected = mac(await key(), body);
      const given = Buffer.from(signature, "base64url");
      if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) throw notOurs();
      let parsed: Partial<Payload>;
      try {
        parsed = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Partial<Payload>;
      } catch {
        throw notOurs();
      }
      if (
        parsed?.v !== VERSION ||
        typeof parsed.c !== "string" ||
        typeof parsed.q !== "string" ||
        !isCursor(parsed.c)
      ) {
        throw notOurs();
      }
      if (parsed.q !== queryHash(query))
        throw bad("belongs to a request with other filters; start again without a page_token");
      return parsed.c;
    },
  };
}

/** The MAC key from the database (migration 0004), read once; a failed read is retried on next use. */
export function databasePageTokenKey(sql: Sql): () => Promise<Buffer> {
  let key: Promise<Buffer> | undefined;
  return () => {
    if (!key) {
      const loading = (async () => {
        const [row] = await sql<{ secret: string }[]>`SELECT secret FROM deployment_secrets WHERE name = 'page_token'`;
        if (!row) throw new Error("deployment_secrets has no page_token row: run the migrations");
        return createHash("sha256").update(`agentd page-token key\n${row.secret}`).digest();
      })();
      key = loading;
      loading.catch(() => {
        if (key === loading) key = undefined;
      });
    }
    return key;
  };
}

/** Cursor checks for `decode`. */
export const cursors = {
  /** A sequence number after which to list (a non-negative safe integer). */
  sequence: (c: string) => /^\d{1,16}$/.test(c) && Number(c) <= Number.MAX_SAFE_INTEGER,
  /** An agent name, as agents are registered. */
  name: (c: string) => c.length > 0 && c.length <= 100 && [...c].every((ch) => ch.charCodeAt(0) >= 0x20),
} as const;
