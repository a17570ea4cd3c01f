#!/usr/bin/env node
// The agentd command. Runs the TypeScript sources directly through tsx, so there is no build step.
// `npx agentd` (and every npm script) finds Node 24 from the pinned `node` dev dependency first on
// the PATH; a bare `node bin/agentd.js` uses whatever Node the shell has, so an old one is named here.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 15)) {
  process.stderr.write(
    `agentd: needs Node 22.15 or later (Node 24 LTS recommended); this is Node ${process.version}.\n` +
      "Run it as `npx agentd …` after `npm ci`: that uses the Node 24 installed in node_modules.\n",
  );
  process.exit(1);
}
const { register } = await import("tsx/esm/api");
register();
await import("../services/cli/main.ts");
