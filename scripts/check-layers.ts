// `npm run layers`: the import rules of docs/architecture.md, checked from the source.
// 1. Nothing in services/shared/ imports a service.
// 2. The folders inside services/agent/ form a stack: no two import each other, and no longer cycle.
// Prints each violation and exits 1; prints nothing and exits 0 when the layering holds.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const IMPORT = /(?:import|export)\s[^"']*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

function* sourceFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (name.endsWith(".ts")) yield path;
  }
}

/** Every relative import of a file, as a path relative to the repository root. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (spec?.startsWith(".")) out.push(relative(root, resolve(dirname(file), spec)));
  }
  return out;
}

const problems: string[] = [];

for (const file of sourceFiles(join(root, "services/shared"))) {
  for (const target of importsOf(file)) {
    if (target.startsWith("services/") && !target.startsWith("services/shared/"))
      problems.push(`${relative(root, file)} imports ${target}: services/shared/ must not import a service`);
  }
}

const agent = "services/agent/";
const folderOf = (path: string) => {
  const rest = path.slice(agent.length);
  return rest.includes("/") ? rest.slice(0, rest.indexOf("/")) : undefined; // undefined: service.ts at the top
};
const edges = new Map<string, Set<string>>(); // "from -> to" → files
for (const file of sourceFiles(join(root, agent))) {
  const from = folderOf(relative(root, file));
  if (!from) continue;
  for (const target of importsOf(file)) {
    if (!target.startsWith(agent)) continue;
    const to = folderOf(target);
    if (!to) problems.push(`${relative(root, file)} imports ${target}: only the assembly may import service.ts`);
    else if (to !== from) {
      const key = `${from} -> ${to}`;
      if (!edges.has(key)) edges.set(key, new Set());
      edges.get(key)?.add(relative(root, file));
    }
  }
}
// The folders must form a stack: report every cycle in the folder graph (a pair importing each
// other is the shortest one), with the files that make each step.
const next = new Map<string, string[]>();
for (const key of edges.keys()) {
  const [from, to] = key.split(" -> ") as [string, string];
  next.set(from, [...(next.get(from) ?? []), to]);
}
const reported = new Set<string>();
function walk(path: string[]) {
  for (const to of next.get(path.at(-1) ?? "") ?? []) {
    const at = path.indexOf(to);
    if (at >= 0) {
      const cycle = [...path.slice(at), to];
      const id = [...cycle.slice(0, -1)].sort().join(",");
      if (reported.has(id)) continue;
      reported.add(id);
      const steps = cycle
        .slice(0, -1)
        .map((f, i) => `${f} -> ${cycle[i + 1]} (${[...(edges.get(`${f} -> ${cycle[i + 1]}`) ?? [])].join(", ")})`);
      problems.push(`services/agent/ folders import in a cycle: ${steps.join("; ")}`);
    } else if (path.length < 12) walk([...path, to]);
  }
}
for (const from of next.keys()) walk([from]);

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
