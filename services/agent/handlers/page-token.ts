// Opaque page tokens: a cursor plus a hash of the query they belong to, so a
// token reused with other filters is refused instead of silently skipping rows.
import { createHash } from "node:crypto";
import { invalidArgument } from "../../shared/errors.js";

interface Token {
  v: 1;
  c: string;
  q: string;
}

function queryHash(query: unknown): string {
  return createHash("sha256").update(JSON.stringify(query)).digest("base64url").slice(0, 16);
}

export function encodePageToken(cursor: string, query: unknown): string {
  const token: Token = { v: 1, c: cursor, q: queryHash(query) };
  return Buffer.from(JSON.stringify(token)).toString("base64url");
}

/** The cursor in `token`, or null for the first page. INVALID_ARGUMENT when malformed or from another query. */
export function decodePageToken(token: string, query: unknown): string | null {
  if (token === "") return null;
  const bad = (why: string) => invalidArgument([{ field: "page_token", description: why, reason: "INVALID_PAGE_TOKEN" }], "INVALID_PAGE_TOKEN");
  let parsed: Partial<Token>;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<Token>;
  } catch {
    throw bad("is not a token this server issued");
  }
  if (parsed?.v !== 1 || typeof parsed.c !== "string" || typeof parsed.q !== "string") {
    throw bad("is not a token this server issued");
  }
  if (parsed.q !== queryHash(query)) throw bad("belongs to a request with other filters; start again without a page_token");
  return parsed.c;
}
