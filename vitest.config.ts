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
    // expect.poll's own default (1 s) is a wall-clock bound: a page that reloads through the server,
    // with Chromium, the server and the test on two shared cores, can take longer to settle.
    expect: { poll: { timeout: 15_000 } },
  },
});
