// Playwright suite for the browser runtime (tests/e2e/). Run with `python build.py test`,
// or after `python build.py build`: `npx playwright test`.
//
// Chromium comes from Debian (/usr/bin/chromium): `npx playwright install` cannot
// download here. Two static servers serve web/dist/: one with cross-origin isolation
// (the normal case) and one without it, for the terminate-and-restore fallback.
import { defineConfig } from "@playwright/test";
import { ISOLATED_PORT, PLAIN_PORT } from "./tests/e2e/ports";

// PY_AGENT_DIST: serve another build than web/dist (lets several builds be tested side by side).
const DIST = process.env.PY_AGENT_DIST || "web/dist";

export default defineConfig({
  testDir: "tests/e2e",
  testMatch: "*.spec.ts",
  // Each test boots Pyodide (~4 s cold on two cores, more when two tests boot at once).
  timeout: 120_000,
  expect: { timeout: 30_000 },
  workers: process.env.CI ? 1 : 2,
  fullyParallel: false,
  retries: 0,
  forbidOnly: Boolean(process.env.CI),
  reporter: [["list"]],
  outputDir: process.env.PY_AGENT_E2E_OUTPUT || "test-results",
  use: {
    baseURL: `http://127.0.0.1:${ISOLATED_PORT}`,
    browserName: "chromium",
    viewport: { width: 1280, height: 800 },
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    },
  },
  webServer: [
    {
      command: `python tools/devserver.py --port ${ISOLATED_PORT} --dir ${DIST}`,
      url: `http://127.0.0.1:${ISOLATED_PORT}/index.html`,
      reuseExistingServer: !process.env.CI,
      timeout: 30_000,
    },
    {
      command: `python tools/devserver.py --port ${PLAIN_PORT} --dir ${DIST} --no-isolation`,
      url: `http://127.0.0.1:${PLAIN_PORT}/index.html`,
      reuseExistingServer: !process.env.CI,
      timeout: 30_000,
    },
  ],
});
