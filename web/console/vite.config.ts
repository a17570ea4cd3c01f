// Builds the console into dist/console (git-ignored), served by services/agent/server/console.ts.
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  logLevel: "warn",
  build: {
    outDir: "../../dist/console",
    emptyOutDir: true,
    target: "es2022",
    // One small bundle: no module-preload polyfill (it would need an inline script the CSP refuses).
    modulePreload: { polyfill: false },
  },
});
