import { defineConfig } from "vitest/config";

// Tests start real servers and a real database (Postgres when DATABASE_URL is
// set, embedded PGlite otherwise). Two cores: at most two test files at once.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
