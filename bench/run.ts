// `npm run bench [-- NAME…]`: runs the named benchmarks (default: all) one after
// another, each in its own process so none warms the other's caches.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const dir = import.meta.dirname;
const all = readdirSync(dir)
  .filter((f) => f.endsWith(".ts") && !["run.ts", "support.ts"].includes(f))
  .map((f) => f.replace(/\.ts$/, ""));
const args = process.argv.slice(2);
const names = args.filter((a) => !a.startsWith("--") && all.includes(a));
const passThrough = args.filter((a) => !names.includes(a));
for (const name of names.length > 0 ? names : all) {
  console.error(`\n== bench ${name}`);
  const r = spawnSync(process.execPath, ["--import", "tsx", join(dir, `${name}.ts`), ...passThrough], {
    stdio: "inherit",
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
