// Playwright suite for the browser runtime (tests/e2e/). Run with `python build.py test`,
// or after `python build.py build`: `npx playwright test`.
//
// Chromium comes from Debian (/usr/bin/chromium): `npx playwright install` cannot
// download here. Two static servers serve web/dist/: one with cross-origin isolation
// (the normal case) and one without it, for the terminate-and-restore fallback.
import { defineConfig } from "@playwright/test";
import path from "node:path";
import { ISOLATED_PORT, PLAIN_PORT } from "./tests/e2e/ports";

// PY_AGENT_DIST: serve another build than web/dist (lets several builds be tested side by side).
const DIST = process.env.PY_AGENT_DIST || "web/dist";
// Sites built by `py-agent build` in the "build sites" setup project (tests/e2e/sites.setup.ts),
// for the specs that need more than the bookshop: plain static hosts, embedding, the examples.
const SITES = process.env.PY_AGENT_E2E_SITES || `${path.resolve(DIST)}-sites`;
const SITE_SPECS = [/site\.spec\.ts/, /embed\.spec\.ts/, /local-servers\.spec\.ts/];
// The clinic example's own spec (examples/clinic/tests) runs against its built site and a fake
// model server of py_agent.testing, as in examples/clinic/playwright.config.ts.
const CLINIC_PORT = ISOLATED_PORT + 2;
const FAKE_MODEL_PORT = ISOLATED_PORT + 3;
process.env.FAKE_MODEL_URL ||= `http://127.0.0.1:${FAKE_MODEL_PORT}`;

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
  projects: [
    { name: "app", testIgnore: [/sites\.setup\.ts/, ...SITE_SPECS] },
    { name: "build sites", testMatch: /sites\.setup\.ts/ },
    { name: "sites", testMatch: SITE_SPECS, dependencies: ["build sites"] },
    {
      name: "examples",
      testDir: "examples",
      testMatch: "**/*.spec.ts",
      dependencies: ["build sites"],
      use: { baseURL: `http://127.0.0.1:${CLINIC_PORT}` },
    },
  ],
  webServer: [
    {
      // The clinic site, once "build sites" has built it (the folder is swapped in whole).
      command: `mkdir -p ${SITES}/clinic && python3 -m http.server ${CLINIC_PORT} --bind 127.0.0.1 --directory ${SITES}/clinic`,
      url: `http://127.0.0.1:${CLINIC_PORT}/`,
      reuseExistingServer: !process.env.CI,
      timeout: 30_000,
    },
    {
      command: `python3 -m py_agent.testing.fake_server --format openai --no-auth --port ${FAKE_MODEL_PORT}`,
      url: `http://127.0.0.1:${FAKE_MODEL_PORT}/health`,
      reuseExistingServer: !process.env.CI,
      timeout: 30_000,
    },
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
