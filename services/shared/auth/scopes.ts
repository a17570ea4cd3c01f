/** What an API key may do (DESIGN.md, Auth). */
export const SCOPES = ["agents:run", "tasks:read", "tasks:write", "webhooks:manage", "keys:manage"] as const;
export type Scope = (typeof SCOPES)[number];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** Parses a comma- or space-separated scope list; `all` or `*` means every scope. */
export function parseScopes(text: string): Scope[] {
  const parts = text
    .split(/[,\s]+/)
    .map((x) => x.trim())
    .filter(Boolean);
  if (parts.length === 1 && (parts[0] === "all" || parts[0] === "*")) return [...SCOPES];
  const bad = parts.filter((p) => !isScope(p));
  if (bad.length > 0) throw new Error(`unknown scope ${bad.join(", ")}; known: ${SCOPES.join(", ")}`);
  if (parts.length === 0) throw new Error(`no scopes given; known: ${SCOPES.join(", ")}`);
  return [...new Set(parts as Scope[])];
}
