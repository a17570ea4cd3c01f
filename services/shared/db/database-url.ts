// DATABASE_URL in libpq's standard form, including several hosts
// (postgres://user:pass@h1:5432,h2:5433/db?target_session_attrs=primary).
// WHATWG URL refuses a host list, so it is split here; nothing in this module
// ever puts the password into an error message.

export interface HostPort {
  host: string;
  port: number;
}

export interface DatabaseUrl {
  /** The hosts in URL order; empty when the URL names a Unix socket or no host (then postgres.js connects as it would). */
  hosts: HostPort[];
  /** The target_session_attrs asked for, if any. agentd always needs a writable primary. */
  targetSessionAttrs: string | undefined;
  /** The same URL with only the given host and without target_session_attrs (agentd chooses the host itself). */
  forHost(host: HostPort): string;
  /** For logs: hosts and database, password replaced by ***. */
  redacted: string;
}

/** target_session_attrs values that can lead to a writable primary; the others would send writes to a standby. */
const WRITABLE_ATTRS = new Set(["any", "read-write", "primary"]);

export class DatabaseUrlError extends Error {
  override name = "DatabaseUrlError";
}

const DEFAULT_PORT = 5432;

/** Parses a postgres:// URL; throws DatabaseUrlError (never showing the password) when it is not one agentd can use. */
export function parseDatabaseUrl(url: string): DatabaseUrl {
  const scheme = /^(postgres|postgresql):\/\//i.exec(url);
  if (!scheme) throw new DatabaseUrlError("must be a postgres:// URL");
  const rest = url.slice(scheme[0].length);
  const end = rest.search(/[/?#]/);
  const authority = end === -1 ? rest : rest.slice(0, end);
  const tail = end === -1 ? "" : rest.slice(end);
  const at = authority.lastIndexOf("@");
  const userinfo = at === -1 ? "" : authority.slice(0, at + 1);
  const hostList = at === -1 ? authority : authority.slice(at + 1);

  const hosts: HostPort[] = [];
  const written: string[] = [];
  if (hostList !== "") {
    for (const part of hostList.split(",")) {
      const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]*)(?::(\d*))?$/.exec(part);
      if (!m) throw new DatabaseUrlError("must be a postgres:// URL: a host in its host list is malformed");
      const name = m[1] ?? "";
      if (name === "") throw new DatabaseUrlError("must be a postgres:// URL: a host in its host list is empty");
      const port = m[2] ? Number(m[2]) : DEFAULT_PORT;
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        throw new DatabaseUrlError("must be a postgres:// URL: a port is out of range");
      hosts.push({ host: name.startsWith("[") ? name.slice(1, -1) : name, port });
      written.push(part);
    }
  }
  // The rest (user, password, database, query) must parse as an ordinary URL with the first host.
  let parsed: URL;
  try {
    parsed = new URL(`postgres://${userinfo}${written[0] ?? "localhost"}${tail}`);
  } catch {
    throw new DatabaseUrlError("must be a postgres:// URL");
  }
  const attrs = parsed.searchParams.get("target_session_attrs") ?? undefined;
  if (attrs !== undefined && !WRITABLE_ATTRS.has(attrs)) {
    throw new DatabaseUrlError(
      `target_session_attrs=${attrs} would send agentd's writes to a standby: use primary or read-write (agentd always connects to the writable primary)`,
    );
  }
  // A Unix socket (a host starting with %2F or given as ?host=): left to postgres.js as is.
  const socketPath = decodeURIComponent(hostList).startsWith("/") || parsed.searchParams.has("host");
  const usable = socketPath ? [] : hosts;

  const query = new URLSearchParams(parsed.searchParams);
  query.delete("target_session_attrs");
  const queryText = query.toString();
  const path = parsed.pathname;
  const redactedUser = parsed.username ? `${parsed.username}${parsed.password ? ":***" : ""}@` : "";
  return {
    hosts: usable,
    targetSessionAttrs: attrs,
    forHost(host) {
      const name = host.host.includes(":") ? `[${host.host}]` : host.host;
      return `postgres://${userinfo}${name}:${host.port}${path}${queryText ? `?${queryText}` : ""}`;
    },
    redacted: `postgres://${redactedUser}${hostList}${path}`,
  };
}

/** The URL for logs and errors: password replaced by ***, or a placeholder when it cannot be parsed. */
export function redactDatabaseUrl(url: string): string {
  try {
    return parseDatabaseUrl(url).redacted;
  } catch {
    return "(not shown: it may contain a password)";
  }
}
